"""What `llamarun run` makes of its first argument: a typo, a catalog model to pull, or a question."""

from __future__ import annotations

from pathlib import Path

from clitools import cli


def test_a_typo_suggests_the_close_match_not_a_pull_that_fails(smollm2_home: Path):
    proc = cli("run", "smolm2", "Hi", home=smollm2_home)
    assert proc.returncode == 1
    assert 'did you mean "smollm2"' in proc.stderr  # the closest first (the catalog has other smollm2 tags)
    assert "pull smolm2" not in proc.stderr and "Traceback" not in proc.stderr


def test_an_unknown_name_says_how_to_get_a_model(smollm2_home: Path):
    proc = cli("run", "qqqqzzzz", "Hi", home=smollm2_home)
    assert proc.returncode == 1
    assert "not in the store or the catalog" in proc.stderr and "llamarun pull" in proc.stderr


def test_a_question_as_first_argument_is_the_prompt_for_the_default_model(smollm2_home: Path):
    # greedy (-t 0): at the model's default temperature SmolLM2 once answered without "Paris" (a suite run, 2026-12-04)
    proc = cli("run", "What is the capital of France? Answer in one word.", "-t", "0", home=smollm2_home)
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout


def test_run_pulls_a_catalog_model_that_is_not_in_the_store(home: Path):
    proc = cli("run", "smollm2", "What is the capital of France? Answer in one word.", "-t", "0", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "pulling it from the catalog" in proc.stderr and "MiB" in proc.stderr  # the pull's progress
    assert "Paris" in proc.stdout
    listed = cli("list", home=home)
    assert "smollm2:latest" in listed.stdout and "93.8 MiB" in listed.stdout  # one size convention


def test_show_and_remote_names_suggest_the_close_match_or_a_pull_that_works(home: Path):
    typo = cli("show", "smolm2", home=home)
    assert typo.returncode == 1 and 'did you mean "smollm2"' in typo.stderr and "pull smolm2" not in typo.stderr
    catalog = cli("show", "llama3.2:1b", home=home)  # a catalog name not pulled yet: the pull that works
    assert catalog.returncode == 1 and "llamarun pull llama3.2:1b" in catalog.stderr
    unknown = cli("show", "qqqqzzzz", home=home)
    assert unknown.returncode == 1 and "llamarun pull" not in unknown.stderr and "llamarun list" in unknown.stderr
