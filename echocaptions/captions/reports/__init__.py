"""Report text: de-identification, language, findings from text, token counts and the report caption."""
