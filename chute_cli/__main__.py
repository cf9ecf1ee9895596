from chute_cli.main import app

app(prog_name="chute")
