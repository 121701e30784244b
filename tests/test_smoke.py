from xlsales.cli import main


def test_demo_runs(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "月度排名" in out and "提成发放表" in out
