from sextant.cli.main import app

app(prog_name="sextant")
