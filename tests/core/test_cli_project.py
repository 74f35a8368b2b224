import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "idstudio", *map(str, args)], capture_output=True, text=True)


def test_init_info_and_errors(tmp_path):
    assert run("init", tmp_path / "p").returncode == 0
    info = run("info", tmp_path / "p", "--json")
    assert info.returncode == 0 and json.loads(info.stdout.splitlines()[-1])["videos"] == 0
    missing = run("info", tmp_path / "nope")
    assert missing.returncode == 2 and "not an idstudio project" in missing.stderr and "Traceback" not in missing.stderr


def test_demo_small_no_gui(tmp_path):
    out = run("demo", tmp_path / "d", "--small", "--no-gui", "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.splitlines()[-1])
    assert figures["videos"] >= 2 and figures["instances"] > 100 and figures["gallery_images"] > 10
    again = json.loads(run("demo", tmp_path / "d", "--no-gui", "--json").stdout.splitlines()[-1])
    assert again["generated"] is False and again["instances"] == figures["instances"]
