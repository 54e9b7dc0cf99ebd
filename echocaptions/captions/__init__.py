"""Caption tiers: expert reports, Jinja templates, local LLM (see each module)."""
