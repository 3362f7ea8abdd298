"""OpenEvolve-style folders over REST: uploaded as their users ship them (config.yaml, README,
requirements.txt), run, and what the API shows of their stage cascades, errors and tiers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.service.api.conftest import Api

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openevolve_style"


def archive(folder: Path, extra: dict[str, str] | None = None) -> bytes:
    """Returns a tar.gz of folder under its own name, as `tar czf x.tgz folder` makes it."""
    buf = io.BytesIO()
    files = {p.name: p.read_text() for p in folder.iterdir() if p.is_file()} | (extra or {})
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{folder.name}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload(api: Api, data: bytes, name: str = "problem.tar.gz"):
    return api.client.post("/api/problems/upload", headers=api.h("alice"),
                           files={"archive": (name, data, "application/gzip")})


def test_an_openevolve_folder_whose_initial_program_stops_at_stage_1_is_accepted_and_runs(
        api: Api) -> None:
    extra = {"README.md": "# noisy minimum\n", "requirements.txt": "numpy\n"}
    r = upload(api, archive(FIXTURES / "noisy_minimum", extra))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["initial_score"] < 0.5  # its stage 1 never reaches the threshold 0.5
    answers = api.tmp / "answers.json"
    body_code = "def search():\n    return 3.0 + random.uniform(-0.05, 0.05)"
    answers.write_text(json.dumps([f"```python\n{body_code}\n```\n"]))
    r = api.client.post("/api/runs", headers=api.h("alice"), json={
        "problem_id": body["id"], "start": True,
        "config": {"llm": {"use": api.scripted(answers)},
                   "budget": {"iterations": 2}, "evaluation": {"reverify_top_k": 1}}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    api.drive(run_id)
    run = api.client.get(f"/api/runs/{run_id}", headers=api.h("alice")).json()
    assert run["status"] == "completed" and run["best_score"] > 0.9
    best = api.client.get(f"/api/programs/{run['best_program_id']}", headers=api.h("alice"))
    assert best.json()["tier"].startswith("re-evaluated (stochastic, sd ")


def test_an_error_reported_by_a_childs_evaluation_shows_in_the_failure_summary(api: Api) -> None:
    evaluator = ("import importlib.util\n\n\ndef evaluate(path):\n"
                 "    spec = importlib.util.spec_from_file_location('p', path)\n"
                 "    mod = importlib.util.module_from_spec(spec)\n"
                 "    spec.loader.exec_module(mod)\n    vals = mod.values()\n"
                 "    if not vals:\n"
                 "        return {'combined_score': 0.0, 'error': 'values() returned nothing'}\n"
                 "    return {'combined_score': float(sum(vals))}\n")
    r = upload(api, archive(FIXTURES / "reports_error", {"evaluator.py": evaluator}))
    assert r.status_code == 201, r.text
    answers = api.tmp / "answers.json"
    answers.write_text(json.dumps(["```python\ndef values():\n    return []\n```\n"]))
    r = api.client.post("/api/runs", headers=api.h("alice"), json={
        "problem_id": r.json()["id"], "start": True,
        "config": {"llm": {"use": api.scripted(answers)},
                   "budget": {"iterations": 1}, "evaluation": {"reverify_top_k": 0}}})
    run_id = r.json()["id"]
    api.drive(run_id)
    failures = api.client.get(f"/api/runs/{run_id}/failures", headers=api.h("alice")).json()
    assert failures["reported_errors"] == {"count": 1, "example": "values() returned nothing"}
    listed = api.client.get(f"/api/runs/{run_id}/programs?kind=mutation",
                            headers=api.h("alice")).json()["items"]
    child = api.client.get(f"/api/programs/{listed[0]['id']}", headers=api.h("alice")).json()
    assert child["status"] == "ok" and child["failure_reason"] == "values() returned nothing"


def test_an_openevolve_folder_missing_a_module_is_refused_naming_it(api: Api) -> None:
    r = upload(api, archive(FIXTURES / "reports_error"))
    assert r.status_code == 422
    assert "No module named 'quantum_widgets_not_installed'" in r.text
    assert "install the missing module" in r.text
