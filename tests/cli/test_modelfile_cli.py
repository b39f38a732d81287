"""`llamarun create NAME -f Modelfile`, then `run` and `show --modelfile` with the tiny model (subprocess)."""

from __future__ import annotations

import re
from pathlib import Path

from clitools import cli


def _stats(stderr: str) -> tuple[int, int]:
    prompt = re.search(r"prompt: (\d+) tokens", stderr)
    generated = re.search(r"generated: (\d+) tokens", stderr)
    assert prompt and generated, stderr
    return int(prompt.group(1)), int(generated.group(1))


def test_create_then_run_applies_the_modelfile(tiny_home: Path, tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text('FROM tiny\nPARAMETER num_predict 3\nPARAMETER temperature 0\n'
                         'SYSTEM """You are a pirate.\nAlways answer in rhyme."""\n')
    proc = cli("create", "pirate", "-f", str(modelfile), "-q", home=tiny_home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("pirate:latest")

    base = cli("run", "tiny", "hello", "-v", "-n", "8", "--temperature", "0", home=tiny_home)
    made = cli("run", "pirate", "hello", "-v", home=tiny_home)
    assert base.returncode == 0 and made.returncode == 0, base.stderr + made.stderr
    base_prompt, _ = _stats(base.stderr)
    made_prompt, made_generated = _stats(made.stderr)
    assert made_generated <= 3  # num_predict 3 (the CLI's own default is 512)
    assert made_prompt > base_prompt + 8  # the SYSTEM text is in the prompt

    explicit = cli("run", "pirate", "hello", "-v", "-n", "1", home=tiny_home)
    assert explicit.returncode == 0, explicit.stderr
    assert _stats(explicit.stderr)[1] <= 1  # the command line wins over the Modelfile
    own_system = cli("run", "pirate", "hello", "-v", "--system", "Hi.", home=tiny_home)
    assert _stats(own_system.stderr)[0] < made_prompt  # a given system message replaces the Modelfile's

    shown = cli("show", "pirate", "--modelfile", home=tiny_home)
    assert shown.returncode == 0, shown.stderr
    assert "PARAMETER num_predict 3" in shown.stdout
    assert 'SYSTEM """You are a pirate.\nAlways answer in rhyme."""' in shown.stdout
    assert re.search(r"^FROM /.*blobs/sha256-[0-9a-f]{64}$", shown.stdout, re.M)


def test_bad_modelfiles_fail_with_the_line(tiny_home: Path, tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM tiny\nPARAMETER num_predikt 3\n")
    proc = cli("create", "x", "-f", str(modelfile), home=tiny_home)
    assert proc.returncode == 1
    assert "Modelfile line 2: unknown parameter 'num_predikt'" in proc.stderr
    assert "Traceback" not in proc.stderr

    modelfile.write_text('FROM tiny\nTEMPLATE """{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}"""\n')
    proc = cli("create", "x", "-f", str(modelfile), home=tiny_home)
    assert proc.returncode == 1 and "Go template" in proc.stderr and "only Jinja" in proc.stderr

    modelfile.write_text('FROM tiny\nTEMPLATE "{% if %}"\n')
    proc = cli("create", "x", "-f", str(modelfile), home=tiny_home)
    assert proc.returncode == 1 and "does not compile as Jinja" in proc.stderr
    assert "x:latest" not in cli("list", home=tiny_home).stdout


def test_jinja_template_from_the_modelfile_is_used(tiny_home: Path, tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM tiny\nPARAMETER num_predict 2\nTEMPLATE \"\"\"{% for m in messages %}"
                         "{{ m['content'] }}{% endfor %}\"\"\"\n")
    assert cli("create", "bare", "-f", str(modelfile), "-q", home=tiny_home).returncode == 0
    made = cli("run", "bare", "hello", "-v", home=tiny_home)
    base = cli("run", "tiny", "hello", "-v", "-n", "2", home=tiny_home)
    assert made.returncode == 0, made.stderr
    assert _stats(made.stderr)[0] < _stats(base.stderr)[0]  # no ChatML markers around "hello"


def test_create_with_a_gguf_after_f_still_works(home: Path, tiny_model_path: Path) -> None:
    proc = cli("create", "t2", "-f", str(tiny_model_path), "-q", home=home)
    assert proc.returncode == 0, proc.stderr
