"""``cmalign serve``, a real server on loopback with the real embedded model: its JSON API labels as
``annotate`` does, it keeps every label it acknowledged through ``kill -9``, learns from new labels
without ever answering from half a model, speaks Label Studio's ML backend protocol, and answers
every bad request with a 4xx naming the field."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serving import Server, fit_bank

from cmalign.cli import main
from cmalign.data import load_bundled
from cmalign.interchange import label_config

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A bank fitted on 120 of MASSIVE's labelled texts, and 200 texts to label."""
    root = tmp_path_factory.mktemp("serve")
    ds = load_bundled("massive_scenario")
    fit_bank(root, ds.large[:120])
    (root / "new.jsonl").write_text("".join(json.dumps({"text": i.text}) + "\n" for i in ds.small[:200]))
    return root, ds


def fresh_bank(data, tmp_path: Path) -> Path:
    """A copy of the fitted bank (and its state) in a folder of the test's own: its labels file is its own."""
    root, _ = data
    for name in ("bank.json", "bank.cm_best.npz"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    return tmp_path / "bank.json"


def annotated(bank: Path, source: Path, out: Path) -> list[dict]:
    assert main(["annotate", str(source), "--bank", str(bank), "-o", str(out), "--adapt", "0", "-q"]) == 0
    return [{k: v for k, v in json.loads(line).items() if k != "line"} for line in out.read_text().splitlines()]


def test_json_api_labels_as_annotate_does_before_and_after_a_refit(data, tmp_path):
    root, ds = data
    bank = fresh_bank(data, tmp_path)
    texts = [json.loads(line)["text"] for line in (root / "new.jsonl").read_text().splitlines()]
    with Server(bank, "--refit-after", "40") as server:
        status, answer = server("/v1/label", "POST", {"texts": texts})
        assert status == 200
        assert answer["records"] == annotated(bank, root / "new.jsonl", tmp_path / "before.jsonl")

        before = answer["model_version"]
        labels = [{"text": i.text, "label": i.label} for i in ds.large[120:160]]
        assert server("/v1/labels", "POST", {"labels": labels})[0] == 200
        model = server.wait_for(lambda m: m["model_version"] != before, "refit")
        assert model["counts"]["samples"] == 160 and model["counts"]["labels_pending"] == 0
        status, answer = server("/v1/label", "POST", {"texts": texts})
        assert answer["model_version"] == model["model_version"]
        # the refitted bank is written beside the given one, which annotate reads to the same records
        assert answer["records"] == annotated(tmp_path / "bank.served.json", root / "new.jsonl",
                                              tmp_path / "after.jsonl")
    assert json.loads(bank.read_text()) == json.loads((root / "bank.json").read_text())  # never written


def test_concurrent_requests_batched_together_get_what_each_gets_alone(data, tmp_path):
    root, ds = data
    texts = [i.text for i in ds.small[200:264]]
    with Server(fresh_bank(data, tmp_path)) as server:
        alone = [server("/v1/label", "POST", {"texts": texts[i:i + 4]})[1]["records"] for i in range(0, 64, 4)]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda i: server("/v1/label", "POST", {"texts": texts[i:i + 4]})[1]["records"],
                                     range(0, 64, 4)))
    assert together == alone


def test_kill_9_after_the_reply_loses_no_acknowledged_label(data, tmp_path):
    _, ds = data
    bank = fresh_bank(data, tmp_path)
    given = [{"text": i.text, "label": i.label} for i in ds.large[120:150]]
    server = Server(bank, "--refit-after", "0")  # no refit: the labels live only in the labels file
    for start in range(0, 30, 3):
        status, reply = server("/v1/labels", "POST", {"labels": given[start:start + 3]})
        assert status == 200 and reply["labels_given"] == start + 3
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    kept = bank.with_name("bank.labels.jsonl")
    assert [{k: r[k] for k in ("text", "label")} for r in map(json.loads, kept.read_text().splitlines())] == given

    with open(kept, "ab") as handle:  # and a write cut short by the kill: a torn last line
        handle.write(b'{"text": "half a li')
    with Server(bank, "--refit-after", "0") as again:
        model = again("/v1/model")[1]
        assert model["counts"] == model["counts"] | {"samples": 150, "labels_given": 30, "labels_learned": 30,
                                                     "labels_pending": 0}
        assert again("/v1/labels", "POST", {"labels": given[:1]})[1]["labels_given"] == 31
    assert "torn last line" in again.log.read_text()
    assert len(kept.read_text().splitlines()) == 31 and kept.read_text().endswith("\n")


def test_requests_are_answered_by_the_old_model_until_the_new_one_is_swapped_in(data, tmp_path):
    _, ds = data
    new = ds.large[120:1120]  # a refit on 1,120 samples takes seconds: requests come meanwhile
    with Server(fresh_bank(data, tmp_path), "--refit-after", "0") as server:
        for start in range(0, len(new), 250):
            labels = [{"text": i.text, "label": i.label} for i in new[start:start + 250]]
            assert server("/v1/labels", "POST", {"labels": labels})[0] == 200
        before = server("/v1/model")[1]["model_version"]
        assert server("/v1/refit", "POST")[0] == 202
        seen, during = [], 0
        while True:
            status, model = server("/v1/model")
            status_label, answer = server("/v1/label", "POST", {"texts": ["wake me up at seven"]})
            assert status == status_label == 200
            seen.append(answer["model_version"])
            during += model["refitting"] and answer["model_version"] == before
            if answer["model_version"] != before:
                break
        after = server("/v1/model")[1]
    assert during > 0  # answered, by the model before, while the refit ran
    assert set(seen) == {before, after["model_version"]} and seen[-1] == after["model_version"]
    assert after["counts"]["samples"] == 1120 and after["refits"] == 1


def test_a_failed_refit_leaves_the_model_serving_and_says_so(data, tmp_path):
    _, ds = data
    bank = fresh_bank(data, tmp_path)
    bank.with_name("bank.served.json").mkdir()  # the refitted bank cannot be written there
    with Server(bank, "--refit-after", "5") as server:
        before = server("/v1/model")[1]["model_version"]
        labels = [{"text": i.text, "label": i.label} for i in ds.large[120:125]]
        assert server("/v1/labels", "POST", {"labels": labels})[0] == 200
        model = server.wait_for(lambda m: m["refit_error"], "failed refit")
        assert model["model_version"] == before and model["counts"]["labels_pending"] == 5
        status, answer = server("/v1/label", "POST", {"texts": ["wake me up at seven"]})
        assert status == 200 and answer["model_version"] == before
    assert "refit on 125 samples failed" in server.log.read_text()


def test_sigterm_finishes_the_request_in_flight(data, tmp_path):
    _, ds = data
    texts = [f"{i.text} ({n})" for n, i in enumerate(ds.large[200:712])]  # never encoded before: a second or more
    server = Server(fresh_bank(data, tmp_path), "--max-texts", "512")
    answers = []

    def ask() -> None:
        answers.append(server("/v1/label", "POST", {"texts": texts}))
        answers.append(time.monotonic())

    worker = threading.Thread(target=ask)
    worker.start()
    time.sleep(0.4)  # the request is being labelled
    stopped = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    worker.join(60)
    (status, answer), answered = answers
    assert answered > stopped  # it was in flight when the signal came, and was finished
    assert status == 200 and len(answer["records"]) == 512
    server.process.wait(60)  # and the process ended
    assert '"path": "/v1/label", "status": 200' in server.log.read_text()


def test_label_studio_protocol(data, tmp_path):
    """The shapes Label Studio's own server code sends and reads (label_studio/ml/api_connector.py)."""
    _, ds = data
    bank = fresh_bank(data, tmp_path)
    config = label_config(list(ds.labels.labels), "utterance").replace('name="label"', 'name="intent"')
    tasks = [{"id": 10 + n, "data": {"utterance": i.text}} for n, i in enumerate(ds.small[:3])]
    with Server(bank, "--refit-after", "2") as server:
        health = server("/health")[1]
        assert health["status"] == "UP"
        assert server("/setup", "POST", {"project": "1.1700000000", "schema": config})[1] == {
            "model_version": health["model_version"]}
        status, answer = server("/predict", "POST", {"tasks": tasks, "project": "1.1700000000", "label_config": config,
                                                     "params": {"login": None, "password": None, "context": None}})
        assert status == 200 and len(answer["results"]) == 3
        for result in answer["results"]:
            (region,) = result["result"]
            assert region["from_name"] == "intent" and region["to_name"] == "text" and region["type"] == "choices"
            assert region["value"]["choices"][0] in ds.labels and 0 < result["score"] <= 1
            assert result["model_version"] == health["model_version"]

        def event(action, task, label):
            annotation = {"id": 1, "result": [{"from_name": "intent", "to_name": "text", "type": "choices",
                                               "value": {"choices": [label]}}], "was_cancelled": False}
            return {"action": action, "annotation": annotation, "task": task,
                    "project": {"id": 1, "label_config": config}}

        assert server("/webhook", "POST", event("ANNOTATION_CREATED", tasks[0], "alarm"))[0] == 201
        assert server("/webhook", "POST", event("ANNOTATION_UPDATED", tasks[0], "weather"))[0] == 201
        model = server.wait_for(lambda m: m["refits"] == 1, "refit")
        # the update replaced the first label of the same task: one more sample, labelled weather
        assert model["counts"]["samples"] == 121
        weather = sum(s["label"] == "weather" for s in json.loads(bank.read_text())["samples"])
        assert model["counts"]["per_label"]["weather"] == weather + 1
        assert server("/webhook", "POST", {"action": "PROJECT_UPDATED", "project": {"id": 1}})[1] == {
            "status": "Unknown event"}
        assert server("/webhook", "POST", {"action": "START_TRAINING", "project": {"id": 1}})[0] == 201


def test_a_deleted_or_skipped_annotation_takes_back_its_label_and_the_task_falls_back(data, tmp_path):
    _, ds = data
    bank = fresh_bank(data, tmp_path)
    config = label_config(list(ds.labels.labels))
    tasks = [{"id": 10 + n, "data": {"text": i.text}} for n, i in enumerate(ds.small[:3])]

    def event(action, task, number, label):  # label None: the task skipped
        result = [] if label is None else [{"from_name": "label", "to_name": "text", "type": "choices",
                                            "value": {"choices": [label]}}]
        return {"action": action, "annotation": {"id": number, "result": result, "was_cancelled": label is None},
                "task": task, "project": {"id": 1, "label_config": config}}

    def stored(server, body):
        status, answer = server("/webhook", "POST", body)
        assert status == 201
        return answer["result"]["stored"]

    base = Counter(s["label"] for s in json.loads(bank.read_text())["samples"])
    expected = {"samples": sum(base.values()) + 2, "alarm": base["alarm"] + 2, "weather": base["weather"],
                "music": base["music"]}
    with Server(bank, "--refit-after", "0") as server:
        # two annotators on the first task (alarm, then weather), one each on the others
        for number, task, label in [(1, 0, "alarm"), (2, 0, "weather"), (3, 1, "music"), (4, 2, "alarm")]:
            assert stored(server, event("ANNOTATION_CREATED", tasks[task], number, label)) == 1
        deleted = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 2}, {"id": 99}], "project": {"id": 1}}
        assert stored(server, deleted) == 1             # 99 never taught anything
        assert stored(server, event("ANNOTATION_UPDATED", tasks[1], 3, None)) == 1   # updated to a skip
        assert stored(server, event("ANNOTATION_UPDATED", tasks[1], 3, None)) == 0   # nothing left to take back
        assert stored(server, deleted) == 0
        assert server("/v1/refit", "POST", {})[0] == 202
        model = server.wait_for(lambda m: m["refits"] == 1 and not m["refitting"], "refit")
        # the first task falls back to its first annotation (alarm), the second teaches nothing
        counts = model["counts"]
        assert {"samples": counts["samples"], **{k: counts["per_label"][k] for k in ("alarm", "weather", "music")}} \
            == expected
        assert counts["labels_given"] == 6  # four labels, two taken back
    with Server(bank) as again:  # the same from the labels file alone
        counts = again("/v1/model")[1]["counts"]
        assert {"samples": counts["samples"], **{k: counts["per_label"][k] for k in ("alarm", "weather", "music")}} \
            == expected
    lines = [json.loads(line) for line in (tmp_path / "bank.labels.jsonl").read_text().splitlines()]
    assert [(line["annotation"], line["label"]) for line in lines[4:]] == [
        ("label-studio:annotation:2", None), ("label-studio:annotation:3", None)]


BAD = {  # name: (path, body as bytes or JSON, (status, field))
    "not JSON": ("/v1/label", b'{"texts": ["a"', (400, "body")),
    "not UTF-8": ("/v1/label", b'{"texts": ["\xff"]}', (400, "body")),
    "nested too deep": ("/v1/label", b'{"texts": ' + b"[" * 990 + b"]" * 990 + b"}", (400, "body")),
    "a lone surrogate": ("/v1/label", b'{"texts": ["\\ud800"]}', (400, "body")),
    "a key twice": ("/v1/label", b'{"texts": ["a"], "texts": ["b"]}', (400, "body")),
    "no texts": ("/v1/label", {"text": ["a"]}, (422, "texts")),
    "texts not a list": ("/v1/label", {"texts": "a"}, (422, "texts")),
    "a text not a string": ("/v1/label", {"texts": ["a", 3]}, (422, "texts[1]")),
    "an empty text": ("/v1/label", {"texts": ["a", " "]}, (422, "texts[1]")),
    "not an object": ("/v1/label", ["a"], (422, "body")),
    "too many texts": ("/v1/label", {"texts": ["a"] * 11}, (413, "texts")),
    "oversize": ("/v1/label", {"texts": ["a" * 3000]}, (413, "body")),
    "no labels": ("/v1/labels", {}, (422, "labels")),
    "a label without its text": ("/v1/labels", {"labels": [{"label": "alarm"}]}, (422, "labels[0].text")),
    "a null label without an id": ("/v1/labels", {"labels": [{"text": "a", "label": None}]}, (422, "labels[0].id")),
    "an unknown label": ("/v1/labels", {"labels": [{"text": "a", "label": "alarm"}, {"text": "b", "label": "x"}]},
                         (422, "labels[1].label")),
    "predict without a config": ("/predict", {"tasks": []}, (422, "label_config")),
    "predict on a config with no choices": ("/predict", {"tasks": [], "label_config": "<View><Text name='t' "
                                            "value='$t'/></View>"}, (422, "label_config")),
    "a task without its text": ("/predict", {"tasks": [{"data": {"other": "a"}}], "label_config": label_config(
        ["alarm"])}, (422, "tasks[0].data.text")),
    "a webhook without a project": ("/webhook", {"action": "ANNOTATION_CREATED"}, (422, "project")),
    "a deletion without the annotation's id": ("/webhook", {"action": "ANNOTATIONS_DELETED", "annotations": [
        {"id": 3}, {"pk": 4}]}, (422, "annotations[1].id")),
    "an annotation with an unknown label": ("/webhook", {
        "action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": label_config(["alarm", "x"])},
        "task": {"id": 1, "data": {"text": "a"}}, "annotation": {"result": [
            {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["x"]}}]}},
        (422, "annotation.result")),
}


@pytest.fixture(scope="module")
def guarded(data, tmp_path_factory):
    """A server that needs a token, with small limits."""
    bank = fresh_bank(data, tmp_path_factory.mktemp("guarded"))
    with Server(bank, "--token-env", "SERVE_TOKEN", "--max-texts", "10", "--max-request-bytes", "2000",
                env={"SERVE_TOKEN": TOKEN}) as server:
        yield server


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_are_a_4xx_naming_the_field(guarded, case):
    path, body, (status, field) = BAD[case]
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    got, answer = guarded(path, "POST", raw=raw, token=TOKEN)
    assert (got, answer["error"]["field"]) == (status, field), answer
    assert answer["error"]["message"]


def test_the_token(guarded):
    assert guarded("/health")[0] == 200  # the one public route: says nothing of the model's data
    for kwargs in ({}, {"token": "wrong"}, {"basic": "user:wrong"}, {"headers": {"Authorization": "Token " + TOKEN}}):
        status, answer = guarded("/v1/model", **kwargs)
        assert status == 401 and answer["error"]["field"] == "Authorization"
    assert guarded("/v1/model", token=TOKEN)[0] == 200
    assert guarded("/v1/model", basic=f"label-studio:{TOKEN}")[0] == 200  # Label Studio's basic auth
    assert TOKEN not in guarded.log.read_text()


def test_a_server_beyond_loopback_needs_a_token(data, capsys, tmp_path):
    bank = fresh_bank(data, tmp_path)
    assert main(["serve", "--bank", str(bank), "--host", "0.0.0.0"]) == 2
    assert "--token-env" in capsys.readouterr().err
    assert main(["serve", "--bank", str(bank), "--token-env", "CMALIGN_TEST_UNSET_VARIABLE"]) == 2
    assert "CMALIGN_TEST_UNSET_VARIABLE" in capsys.readouterr().err


def test_a_label_given_with_an_id_is_taken_back_with_a_null_label(data, tmp_path):
    _, ds = data
    bank = fresh_bank(data, tmp_path)
    texts = [i.text for i in ds.small[:2]]
    with Server(bank, "--refit-after", "0") as server:
        given = [{"text": texts[0], "label": "alarm", "id": "t1"}, {"text": texts[1], "label": "weather", "id": 2}]
        assert server("/v1/labels", "POST", {"labels": given})[1]["stored"] == 2
        assert server("/v1/labels", "POST", {"labels": [{"id": "t1", "label": None}]})[1]["stored"] == 1
        assert server("/v1/labels", "POST", {"labels": [{"id": "t1", "label": None}]})[1]["stored"] == 0
        assert server("/v1/labels", "POST", {"labels": [{"id": "3", "label": None}]})[1]["stored"] == 0  # never given
        assert server("/v1/refit", "POST", {})[0] == 202
        model = server.wait_for(lambda m: m["refits"] == 1 and not m["refitting"], "refit")
        samples = json.loads(bank.read_text())["samples"]
        assert model["counts"]["samples"] == len(samples) + 1
        assert model["counts"]["per_label"]["alarm"] == sum(s["label"] == "alarm" for s in samples)


def test_a_labels_file_line_that_withdraws_no_annotation_is_refused_by_line(tmp_path):
    from cmalign.errors import DataError
    from cmalign.serve.store import LabelStore

    path = tmp_path / "bank.labels.jsonl"
    path.write_text('{"text": "wake me at 7", "label": "alarm", "source": "api"}\n'
                    '{"text": "wake me at 7", "label": null, "source": "api"}\n')
    with pytest.raises(DataError) as caught:
        LabelStore(path)
    assert str(caught.value).startswith(f"{path}:2: not a label cmalign serve wrote")
