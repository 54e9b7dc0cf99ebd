from echocaptions.cli import app

app()
