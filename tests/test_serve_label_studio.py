"""``cmalign serve`` as the ML backend of a real Label Studio (the ``label-studio`` package from PyPI,
installed into .venv-label-studio/ by tests/install-label-studio.sh), on SQLite, on loopback.

A project with a text-classification config is created through Label Studio's REST API, its tasks
imported, the backend connected (with HTTP Basic auth carrying the server's token, as Label Studio
sends it, and the token as a header of the webhook Label Studio made for it); Label Studio asks it for predictions of every task, then annotations are submitted
through Label Studio, whose webhooks bring them to the backend, and one is deleted, which takes
back what it taught. The backend's model_version
changes and its accuracy on the held-back tasks, as Label Studio stores the predictions, does not
fall."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from serving import Server, fit_bank, free_port

from cmalign.data import load_bundled
from cmalign.interchange import label_config

LABEL_STUDIO = Path(__file__).resolve().parent.parent / ".venv-label-studio" / "bin" / "label-studio"
LS_TOKEN = "0123456789abcdef0123456789abcdef01234567"  # the Label Studio user's API token
BACKEND_TOKEN = "backend-token-for-the-label-studio-test"
ANNOTATED, HELD_BACK = 120, 400


class LabelStudio:
    """``label-studio start`` on a fresh SQLite data folder, a user and API token made at start."""

    def __init__(self, folder: Path) -> None:
        assert LABEL_STUDIO.exists(), f"{LABEL_STUDIO} is missing: run tests/install-label-studio.sh first"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "label-studio.log"
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(folder / "data"),
               # the --user-token below is a legacy token, sent as "Authorization: Token ..."
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
               # Label Studio refuses ML backends on private and loopback addresses by default (its SSRF
               # guard); this backend is on loopback, on purpose
               "USE_DEFAULT_BANNED_SUBNETS": "false"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(LABEL_STUDIO), "start", "--no-browser", "--port", str(self.port), "--internal-host", "127.0.0.1",
                 "--username", "test@example.com", "--password", "test-password-1", "--user-token", LS_TOKEN],
                stdout=log, stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Label Studio did not start:\n{self.log.read_text()[-3000:]}")

    def __call__(self, path: str, method: str = "GET", body: object = None) -> object:
        request = urllib.request.Request(self.url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Token {LS_TOKEN}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    def tasks(self, project: int) -> list[dict]:
        return self(f"/api/tasks?project={project}&fields=all&page_size=1000")["tasks"]

    def predict_all(self, project: int) -> None:
        """Label Studio's "Retrieve predictions" action over every task of the project."""
        self(f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}", "POST",
             {"selectedItems": {"all": True, "excluded": []}})

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and anything it started
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def label_studio(tmp_path):
    studio = LabelStudio(tmp_path)
    yield studio
    studio.stop()


def held_back_accuracy(tasks: list[dict], gold: dict[str, str], version: str) -> float:
    """The share of held-back tasks whose prediction of ``version`` is the gold label (none: wrong)."""
    held = [t for t in tasks if t["data"]["split"] == "held-back"]
    right = 0
    for task in held:
        (prediction,) = [p for p in task["predictions"] if p["model_version"] == version]
        assert 0 < prediction["score"] <= 1
        right += [r["value"]["choices"][0] for r in prediction["result"]] == [gold[task["data"]["text"]]]
    return right / len(held)


@pytest.mark.slow
def test_label_studio_gets_predictions_and_the_backend_learns_from_its_annotations(label_studio, tmp_path):
    ds = load_bundled("massive_scenario")
    bank = fit_bank(tmp_path, ds.large[:120])
    to_annotate, held_back = ds.large[120:120 + ANNOTATED], ds.small[:HELD_BACK]
    gold = {i.text: i.label for i in [*to_annotate, *held_back]}

    # Label Studio asks for the predictions of every task it is told to in one request: --max-texts covers them
    with Server(bank, "--token-env", "BACKEND_TOKEN", "--refit-after", "20", "--max-texts", "1000",
                env={"BACKEND_TOKEN": BACKEND_TOKEN}) as backend:
        project = label_studio("/api/projects", "POST", {"title": "cmalign serve test",
                                                         "label_config": label_config(list(ds.labels.labels))})["id"]
        label_studio(f"/api/projects/{project}/import", "POST",
                     [{"text": i.text, "split": "annotate"} for i in to_annotate]
                     + [{"text": i.text, "split": "held-back"} for i in held_back])
        ml = label_studio("/api/ml", "POST", {"url": backend.url, "project": project, "title": "cmalign",
                                              "auth_method": "BASIC_AUTH", "basic_auth_user": "label-studio",
                                              "basic_auth_pass": BACKEND_TOKEN, "auto_update": True})
        first = ml["model_version"]
        # the webhook Label Studio made for the backend sends no credentials of its own: give it the token
        (hook,) = [h for h in label_studio(f"/api/webhooks?project={project}") if h["url"] == backend.url + "/webhook"]
        label_studio(f"/api/webhooks/{hook['id']}", "PATCH",
                     {"headers": {"Authorization": f"Bearer {BACKEND_TOKEN}"}})
        assert ml["state"] == "CO" and first == backend("/health")[1]["model_version"]

        label_studio.predict_all(project)
        tasks = label_studio.tasks(project)
        assert len(tasks) == ANNOTATED + HELD_BACK
        for task in tasks:
            (prediction,) = task["predictions"]
            (region,) = prediction["result"]
            assert (region["from_name"], region["to_name"], region["type"]) == ("label", "text", "choices")
            assert region["value"]["choices"][0] in ds.labels and prediction["model_version"] == first
        before = held_back_accuracy(tasks, gold, first)

        made = []
        for task in [t for t in tasks if t["data"]["split"] == "annotate"]:
            made.append(label_studio(f"/api/tasks/{task['id']}/annotations", "POST", {"result": [
                {"from_name": "label", "to_name": "text", "type": "choices",
                 "value": {"choices": [gold[task["data"]["text"]]]}}]}))
        # one annotation deleted in Label Studio: its webhook takes back what it taught
        label_studio(f"/api/annotations/{made[0]['id']}", "DELETE")
        backend.wait_for(lambda m: m["counts"]["labels_given"] == ANNOTATED + 1, "the deletion", token=BACKEND_TOKEN)
        label_studio(f"/api/ml/{ml['id']}/train", "POST", {})  # START_TRAINING: learn every label now
        model = backend.wait_for(lambda m: m["counts"]["labels_learned"] == ANNOTATED + 1 and not m["refitting"],
                                 "refit on every annotation", token=BACKEND_TOKEN)
        assert model["counts"]["samples"] == 120 + ANNOTATED - 1 and model["model_version"] != first

        label_studio.predict_all(project)
        tasks = label_studio.tasks(project)
        after = held_back_accuracy(tasks, gold, model["model_version"])
        print(f"held-back accuracy in Label Studio: {before:.3f} with {first}, {after:.3f} with "
              f"{model['model_version']}")
        assert after >= before
    log = backend.log.read_text()
    assert '"path": "/webhook", "status": 201' in log and BACKEND_TOKEN not in log
