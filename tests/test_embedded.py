"""The embedded annotator and the kNN baseline on the real model and real bundled data."""

import numpy as np
import pytest

from cmalign import EmbeddingAnnotator, KNNClassifier, ModelError, SentenceEncoder
from cmalign.data import Budget, load_bundled, protocol_split
from cmalign.evaluation import accuracy


@pytest.fixture(scope="module")
def massive():
    ds = load_bundled("massive_scenario")
    return ds, protocol_split(ds, Budget(fraction=0.01), seed=0)


def test_changed_weights_are_refused(tmp_path):
    from cmalign.embedders import MINILM_INT8_SHA256, OnnxEmbedder, Pooling, minilm

    model = tmp_path / "model.onnx"
    model.write_bytes(minilm().model.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelError, match="checksum"):
        OnnxEmbedder(model, _tokenizer(), name="m", pooling=Pooling(), max_length=256,
                     expected_sha256=MINILM_INT8_SHA256)


def _tokenizer():
    from cmalign.embedders import _bge_folder

    return _bge_folder() / "tokenizer.json"


def test_encodings_are_unit_length_and_cached(encoder):
    before = encoder.encoded
    vectors = encoder.encode(["where is my card", "play some jazz", "where is my card"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2])
    encoder.encode(["play some jazz"])
    assert encoder.encoded - before <= 2  # repeats never reach the model


def test_zero_shot_is_far_above_chance(annotator, massive):
    ds, split = massive
    items = split.evaluation[:600]
    answers = annotator.annotate([i.text for i in items], ds.labels)
    acc = accuracy([a.label for a in answers], [i.label for i in items])
    assert acc > 3 / len(ds.labels)  # 18 labels: chance is 0.056
    probs = np.stack([a.scores for a in answers])
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs.argmax(axis=1) == [ds.labels.index(a.label) for a in answers]).all()


def test_candidate_restriction_is_honoured(annotator, massive):
    ds, split = massive
    texts = [i.text for i in split.evaluation[:50]]
    free = annotator.annotate(texts, ds.labels)
    # forbid each item's own best answer: the restricted answer must come from what is left
    cands = [tuple(l for l in ds.labels.labels[:6] if l != a.label) for a in free]
    restricted = annotator.annotate(texts, ds.labels, candidates=cands)
    for r, c, a in zip(restricted, cands, free):
        assert r.label in c and r.label != a.label
        assert r.scores[[ds.labels.index(l) for l in ds.labels.labels if l not in c]].sum() == 0


def test_calls_are_counted_per_item(encoder):
    fresh = EmbeddingAnnotator(encoder)
    from cmalign import LabelSet

    fresh.annotate(["a", "b", "c"], LabelSet.of(["x", "y"]))
    assert fresh.calls == 3


def test_knn_picks_k_by_leave_one_out_and_learns_the_users_labels(encoder, massive):
    ds, split = massive
    knn = KNNClassifier(encoder).fit([i.text for i in split.preference], [i.label for i in split.preference],
                                     label_set=ds.labels)
    loo = dict(knn.loo_accuracy_)
    assert loo[knn.k_] == max(loo.values()) and knn.k_ == min(k for k, a in loo.items() if a == loo[knn.k_])
    items = split.evaluation[:600]
    assert accuracy(knn.predict([i.text for i in items]), [i.label for i in items]) > 0.4
    # on its own preference samples with k=1 it reproduces the user's labels
    knn.k_ = 1
    assert knn.predict([i.text for i in split.preference]) == [i.label for i in split.preference]
