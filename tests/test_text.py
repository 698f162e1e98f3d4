"""Table 2's text domain: the IMDB archive's tokenization, the biLSTM, and a teacher and an ensemble
student trained end to end on a small archive of the same layout (the real one is not here)."""

import io
import random
import tarfile

import pytest
import torch

from kdrepro import compute, data, inputs, models, packed, runs
from kdrepro.chapters import self_vs_ensemble
from kdrepro.config import StudentConfig, TeacherConfig
from kdrepro.errors import ConfigError

GOOD, BAD = ("good", "great", "fine", "superb"), ("bad", "awful", "poor", "dull")
FILLER = ("the", "film", "plot", "actor", "scene", "story", "music", "end")


def _archive(path, per_class: int, seed: int = 0, extra: dict | None = None) -> None:
    """aclImdb_v1.tar.gz's layout (aclImdb/<split>/<neg|pos>/<id>_<rating>.txt, and unlabelled
    train/unsup reviews, which are skipped): positive reviews use GOOD words, negative ones BAD."""
    rng = random.Random(seed)
    files = dict(extra or {})
    for split in ("train", "test"):
        for label, words in (("neg", BAD), ("pos", GOOD)):
            for i in range(per_class):
                text = " ".join(rng.choice(words + FILLER) for _ in range(rng.randint(20, 150)))
                files[f"aclImdb/{split}/{label}/{i}_{rng.randint(1, 10)}.txt"] = text + ".<br />"
    files["aclImdb/train/unsup/0_0.txt"] = "no label"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            blob = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


@pytest.fixture
def imdb(tmp_store, monkeypatch):
    """A 2 x 2 x 40-review archive as the data root's IMDB."""
    root = tmp_store / "data"
    root.mkdir()
    _archive(root / "aclImdb_v1.tar.gz", per_class=40)
    monkeypatch.setenv("KDREPRO_DATA", str(root))
    monkeypatch.setitem(data.SIZES, "imdb", (80, 80))
    return root


def test_basic_english_is_torchtexts():
    text = 'Hello, World! It\'s <br />a "test" (really); ok: done?'
    assert data.basic_english(text) == [
        "hello", ",", "world", "!", "it", "'", "s", "a", "test",
        "(", "really", ")", "ok", "done", "?",
    ]  # fmt: skip


def test_reviews_become_padded_token_ids_of_a_frequency_cut_vocabulary(imdb):
    x, y = data.load("imdb", "train")
    tx, ty = data.load("imdb", "test")
    assert x.dtype == torch.int32 and x.shape == (80, data.TEXT["imdb"]) and tx.shape == x.shape
    assert y.tolist() == [0] * 40 + [1] * 40 and ty.tolist() == y.tolist()
    assert data.vocab_size("imdb") == 2 + 17  # 8 fillers, 8 sentiment words and ".": >= 10 each
    lengths = (x != data.PAD).sum(1)
    assert lengths.min() >= 21 and lengths.max() == 100  # truncated at 100, padded after the end
    for row, n in zip(x, lengths):
        assert (row[n:] == data.PAD).all() and (row[:n] != data.PAD).all()
    # 8 fillers and "." in both classes' reviews; each class's 4 sentiment words in its own alone
    neg, pos = ({int(t) for t in x[c * 40 : (c + 1) * 40].flatten()} - {data.PAD} for c in (0, 1))
    assert len(neg) == len(pos) == 13 and len(neg & pos) == 9
    assert (x == data.UNK).sum() == 0  # every word of this archive is frequent


def test_the_vocabulary_counts_whole_training_reviews_alone(tmp_store, monkeypatch):
    root = tmp_store / "data"
    root.mkdir()
    extra = {
        "aclImdb/train/neg/x0_1.txt": "zebra " * 9,  # 9 times: below the cut of 10, so UNK
        # 10 times, always past the 100th token: in the vocabulary (as torchtext counts whole
        # reviews), though no id the network reads
        **{f"aclImdb/train/neg/y{i}_1.txt": "the " * 100 + "omega" for i in range(10)},
        "aclImdb/test/pos/z0_9.txt": "gamma " * 20,  # frequent in the test reviews only: UNK
    }
    _archive(root / "aclImdb_v1.tar.gz", per_class=40, extra=extra)
    monkeypatch.setenv("KDREPRO_DATA", str(root))
    monkeypatch.setitem(data.SIZES, "imdb", (91, 81))
    x, _ = data.load("imdb", "train")
    tx, _ = data.load("imdb", "test")
    assert (x == data.UNK).sum() == 9 and (tx == data.UNK).sum() == 20
    assert data.vocab_size("imdb") == 2 + 17 + 1 and int(x.max()) == 2 + 17 - 1


def test_a_missing_or_damaged_archive_says_what_to_do(tmp_store, monkeypatch):
    root = tmp_store / "ro"
    root.mkdir()
    root.chmod(0o555)
    monkeypatch.setenv("KDREPRO_DATA", str(root))
    with pytest.raises(data.DatasetMissing, match="imdb: not found .* is read-only"):
        data.load("imdb", "train")
    root = tmp_store / "bad"
    root.mkdir()
    (root / "aclImdb_v1.tar.gz").write_bytes(b"\x1f\x8b not a gzip archive")
    monkeypatch.setenv("KDREPRO_DATA", str(root))
    with pytest.raises(data.DatasetCorrupt, match="not a readable IMDB archive"):
        data.load("imdb", "train")
    root = tmp_store / "short"
    root.mkdir()
    _archive(root / "aclImdb_v1.tar.gz", per_class=3)
    monkeypatch.setenv("KDREPRO_DATA", str(root))
    with pytest.raises(data.DatasetCorrupt, match="6 labelled train reviews, not the 25000"):
        data.load("imdb", "train")


def test_the_bilstm_reads_each_review_to_its_last_word():
    torch.manual_seed(0)
    net = models.build("bilstm", 2, vocab=50).eval()
    x = torch.randint(2, 50, (3, 12))
    x[0, 5:] = data.PAD
    padded_more = torch.cat([x, torch.zeros(3, 8, dtype=x.dtype)], 1)
    with torch.no_grad():  # padding after the end changes nothing
        torch.testing.assert_close(net(x), net(padded_more))
        assert net(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 2)  # an empty review
    with pytest.raises(ConfigError, match="bilstm' reads token ids: give its vocabulary size"):
        models.build("bilstm", 2)
    with torch.no_grad():  # the head reads the top layer's forward state after the last word and
        # its backward state after the first
        out, _ = net.lstm(net.embed(x[1:2]))
        top = torch.cat([out[0, -1, :70], out[0, 0, 70:]])
        torch.testing.assert_close(net(x[1:2]), net.fc(top)[None])
    with pytest.raises(TypeError, match="expected uint8 images or int32/int64 token ids"):
        data.as_input(torch.zeros(2, 3))


def test_text_and_image_settings_do_not_mix():
    with pytest.raises(ConfigError, match="model='preresnet8': imdb is text: expected 'bilstm'"):
        TeacherConfig(dataset="imdb", model="preresnet8", augment="none")
    with pytest.raises(ConfigError, match="augment='crop_flip': imdb is text"):
        TeacherConfig(dataset="imdb", model="bilstm")
    with pytest.raises(ConfigError, match="model='bilstm': reads token ids"):
        TeacherConfig(dataset="mnist", model="bilstm")
    with pytest.raises(ConfigError, match="model='bilstm': has no norm or width to set"):
        TeacherConfig(dataset="imdb", model="bilstm", augment="none", width=2)
    text = dict(dataset="imdb", model="bilstm", augment="none", epochs=1, batch_size=10)
    with pytest.raises(ConfigError, match="ood_dataset='mnist': expected None or, for a data"):
        StudentConfig(**text, teachers=(TeacherConfig(**text),), ood_dataset="mnist", ood_size=5)


def test_table2_imdb_is_the_paper_profiles_alone():
    plan = self_vs_ensemble.plan("paper", dataset="imdb")
    roles = [lab["role"] for lab, _ in plan.rows]
    assert roles.count("teacher") == 15 and roles.count("student") == 9
    t = plan.rows[0][1]
    assert (t.model, t.augment, t.epochs, t.batch_size, t.lr, t.weight_decay) == (
        "bilstm", "none", 100, 100, 1e-2, 1e-3,
    )  # fmt: skip
    s = plan.rows[-1][1]
    assert s.steps == t.steps and s.temperature == 1.0 and len(s.teachers) == 5
    with pytest.raises(ConfigError, match="have the paper profile alone; run it with --profile"):
        self_vs_ensemble.plan("budget", dataset="imdb")


def test_a_bilstms_flops_are_counted_by_hand_without_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("KDREPRO_DATA", str(tmp_path))  # no archive: an estimate must not need one
    # per token and direction, a multiply-add by each of the 2 layers' input and hidden weights
    # (4 gates x 70 cells by 128 and 70 inputs, then by 140 and 70), for 100 tokens; the head
    # reads both directions' 70 states into 2 classes
    lstm = 2 * 2 * (280 * 128 + 280 * 70 + 280 * 140 + 280 * 70) * 100
    assert compute.forward_flops("bilstm", "imdb") == lstm + 2 * 140 * 2


def test_a_teacher_and_an_ensemble_student_train_on_text(imdb):
    tiny = dict(
        dataset="imdb",
        model="bilstm",
        augment="none",
        epochs=8,
        batch_size=20,
        lr=0.5,
        weight_decay=0.0,
        evals=2,
        train_size=60,
        test_size=40,
    )
    teachers = tuple(TeacherConfig(**tiny, seed=k) for k in range(2))
    s = StudentConfig(**tiny, teachers=teachers, temperature=1.0, seed=5)
    assert packed.unpackable(s, "cuda").startswith("bilstm reads variable-length")
    res = runs.run(s, progress=False)
    f, fit = res["final"], runs.run(teachers[0], store_only=True)["final"]
    assert fit["clean_train_accuracy"] >= 0.9 and fit["accuracy"] >= 0.9  # GOOD vs BAD words
    assert f["accuracy"] >= 0.9 and f["agreement"] >= 0.9 and 0 <= f["kl"]
    assert sum(res["deviations"]["test"]["count"]) == 40
    net = inputs.new_model(s)
    assert isinstance(net, models.BiLSTM) and net.embed.num_embeddings == data.vocab_size("imdb")
