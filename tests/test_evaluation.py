"""Evaluation: grouped cross-validation finds planted effects, chance stays chance, labels are checked.

The corpus: 12 "speakers", each three 3-second excerpts of one real recording; the speakers of one
class are low-pass filtered at 1.5 kHz, an effect whose place in the spectrum is known.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import signal, stats

from conftest import CORPUS
from speechae.errors import LabelsError, ParameterError
from speechae.evaluation import evaluate, evaluation_paths, write_evaluation
from speechae.evaluation.effects import benjamini_hochberg, group_effects
from speechae.evaluation.labels import choose_task, match_labels
from speechae.evaluation.metrics import (
    binary_metrics,
    bootstrap_intervals,
    multiclass_metrics,
    regression_metrics,
)

SOURCES = [
    ("aeneas_de.mp3", 0),
    ("aeneas_de.mp3", 12),
    ("aeneas_de.mp3", 24),
    ("aeneas_de.mp3", 36),
    ("aeneas_de.mp3", 48),
    ("disvoice_001_readtext_PCGITA.wav", 0),
    ("librivox_just_like_the_world.flac", 0),
    ("librosa_198-209-0000.ogg", 0),
    ("librosa_5703-47212-0000.ogg", 0),
    ("whisper_jfk.flac", 0),
    ("aespeech_pataka.wav", 0),
    ("aespeech_pakata.wav", 0),
]
CUTOFF = 1500.0
PLANTED = {f"spk{k:02d}" for k in range(0, 12, 2)}  # low-passed


def speechae(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "speechae", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``(folder, features table path, labels)``: the planted corpus and its static features."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside this checkout")
    from speechae.audio import read_audio

    folder = tmp_path_factory.mktemp("planted")
    audio = folder / "audio"
    low_pass = signal.butter(8, CUTOFF, "low", fs=16000, output="sos")
    rows = []
    for number, (name, offset) in enumerate(SOURCES):
        samples, rate = read_audio(CORPUS / name)
        samples = samples.mean(axis=1) if samples.ndim == 2 else samples
        samples = signal.resample_poly(samples, 16000, rate) if rate != 16000 else samples
        speaker = f"spk{number:02d}"
        for take in range(3):
            excerpt = samples[(offset + 3 * take) * 16000 : (offset + 3 * take + 3) * 16000]
            if speaker in PLANTED:
                excerpt = signal.sosfilt(low_pass, excerpt)
            path = audio / speaker / f"take{take}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.5 * excerpt / np.abs(excerpt).max(), 16000)
            rows.append({"file": f"{speaker}/take{take}.wav", "speaker": speaker})
    features = folder / "features.parquet"
    extracted = speechae("extract", audio, "--recursive", "--root", audio, "-o", features, "-q")
    assert extracted.returncode == 0, extracted.stderr
    labels = pd.DataFrame(rows)
    labels["diagnosis"] = ["pd" if speaker in PLANTED else "hc" for speaker in labels["speaker"]]
    labels["severity"] = [
        (20.0 if speaker in PLANTED else 0.0) + int(speaker[3:]) for speaker in labels["speaker"]
    ]
    return folder, features, labels


pytestmark = pytest.mark.weights


def test_grouped_cross_validation_finds_the_planted_effect_where_it_was_planted(corpus):
    folder, features, labels = corpus
    labels.to_csv(folder / "labels.csv", index=False)
    out = folder / "out" / "results.json"
    run = speechae(
        "evaluate", features, "--labels", folder / "labels.csv", "--target", "diagnosis",
        "--group", "speaker", "-o", out, "--folds", 3, "--positive", "pd",
        "--report", folder / "out" / "r.html",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "balanced_accuracy: 1.000" in run.stdout and f"wrote {out}.bands.csv" in run.stdout
    results = json.loads(out.read_text())
    assert results["task"] == "binary" and results["positive_class"] == "pd"
    assert results["metrics"]["balanced_accuracy"]["value"] >= 0.9
    assert results["metrics"]["balanced_accuracy"]["ci95"][0] > 0.5
    assert [w["kind"] for w in results["warnings"]] == ["confound"]  # the low-pass is a channel
    assert "the classes differ in bandwidth_hz" in results["warnings"][0]["message"]
    assert (
        results["confounds"]["bandwidth_hz"]["effect_size"] < -2
        and results["confounds"]["bandwidth_hz"]["q_value"] < 0.05
    )
    assert results["quality_only"]["balanced_accuracy"]["ci95"][0] > 0.5
    assert results["counts"] == {
        "recordings": 36,
        "groups": 12,
        "classes": {"hc": {"recordings": 18, "groups": 6}, "pd": {"recordings": 18, "groups": 6}},
    }
    bands = pd.read_csv(f"{out}.bands.csv")
    assert list(bands.columns) == ["band", "centre_hz", "effect_size", "p_value", "q_value"]
    assert list(bands["band"]) == list(range(128)) and bands["centre_hz"].is_monotonic_increasing
    strongest = bands.loc[bands["effect_size"].abs().nlargest(10).index]
    assert (strongest["centre_hz"] > CUTOFF).all(), strongest
    assert (bands.loc[bands["centre_hz"] > 2 * CUTOFF, "q_value"] < 0.05).mean() > 0.9
    report = (folder / "out" / "r.html").read_text()
    for section in ("headline", "metrics", "roc", "confusion", "bands", "groups", "settings"):
        assert f'id="{section}"' in report


def test_no_group_is_in_two_test_folds_and_the_metrics_are_scikit_learns(corpus, tmp_path):
    from sklearn import metrics

    _, features, labels = corpus
    evaluation = evaluate(features, labels, target="diagnosis", group="speaker", folds=4, repeats=2)
    paths = write_evaluation(evaluation, tmp_path / "results.json")
    results = json.loads(paths["results"].read_text())
    speaker = dict(zip(labels["file"], labels["speaker"], strict=True))
    folds_of = pd.Series(results["folds"]).groupby(lambda file: speaker[file]).nunique()
    assert (folds_of == 1).all() and len(folds_of) == 12
    written = pd.read_csv(paths["predictions"])
    assert list(written.columns) == ["file", "group", "target", "fold", "repeat", "prediction", "score"]
    assert (written.groupby(["repeat", "group"])["fold"].nunique() == 1).all()
    positive = results["positive_class"]
    value = {}
    for _, repeat in written.groupby("repeat"):
        truth, predicted = repeat["target"] == positive, repeat["prediction"] == positive
        value.setdefault("accuracy", []).append(metrics.accuracy_score(truth, predicted))
        value.setdefault("balanced_accuracy", []).append(metrics.balanced_accuracy_score(truth, predicted))
        value.setdefault("roc_auc", []).append(metrics.roc_auc_score(truth, repeat["score"]))
        value.setdefault("sensitivity", []).append(metrics.recall_score(truth, predicted))
        value.setdefault("specificity", []).append(metrics.recall_score(~truth, ~predicted))
    for name, values in value.items():
        assert results["metrics"][name]["value"] == pytest.approx(np.mean(values), abs=1e-12), name
    matrix = metrics.confusion_matrix(written["target"], written["prediction"], labels=["pd", "hc"])
    assert results["confusion_matrix"] == {"labels": ["pd", "hc"], "matrix": matrix.tolist()}


def test_labels_shuffled_by_speaker_give_chance(corpus):
    _, features, labels = corpus
    # Each class: three low-passed speakers and three not, sources split between them (spk00-04
    # are five excerpts of one reader, spk07/08 one book, spk10/11 one speaker's syllables).
    shuffled = {"spk00", "spk03", "spk06", "spk07", "spk09", "spk10"}
    assert len(shuffled & PLANTED) == 3
    labels = labels.assign(diagnosis=["a" if s in shuffled else "b" for s in labels["speaker"]])
    evaluation = evaluate(features, labels, target="diagnosis", group="speaker", folds=3, permutations=9)
    low, high = evaluation.metrics["balanced_accuracy"]["ci95"]
    assert low < 0.5 < high
    assert evaluation.permutation_p > 0.05
    assert (evaluation.bands["q_value"] > 0.05).all()


def test_a_numeric_target_is_a_regression_with_spearman_and_one_value_per_group(corpus, tmp_path):
    _, features, labels = corpus
    evaluation = evaluate(features, labels, target="severity", group="speaker", folds=3, aggregate="group")
    assert evaluation.task == "regression" and evaluation.positive_class is None
    assert set(evaluation.metrics) == {"spearman_r", "pearson_r", "mae"}
    assert evaluation.metrics["spearman_r"]["value"] > 0.5
    predictions = evaluation.predictions
    rho = stats.spearmanr(predictions["target"], predictions["prediction"]).statistic
    assert evaluation.metrics["spearman_r"]["value"] == pytest.approx(rho, abs=1e-12)
    per_group = pd.read_parquet(features).groupby(lambda file: file.split("/")[0]).mean()
    severity = labels.groupby("speaker")["severity"].mean()
    top = int(evaluation.bands["effect_size"].abs().idxmax())
    expected = stats.spearmanr(per_group[f"mean_error_{top}"], severity.loc[per_group.index]).statistic
    assert evaluation.bands.loc[top, "effect_size"] == pytest.approx(expected)
    results = json.loads(write_evaluation(evaluation, tmp_path / "r.json")["results"].read_text())
    assert results["confusion_matrix"] is None and "metrics_by_group" in results


def test_three_classes_give_per_class_recall_a_square_confusion_matrix_and_eta_squared(corpus):
    _, features, labels = corpus
    unplanted = sorted({f"spk{k:02d}" for k in range(12)} - PLANTED)
    kind = {speaker: "lowpass" for speaker in PLANTED} | {
        s: "x" if k < 3 else "y" for k, s in enumerate(unplanted)
    }
    labels = labels.assign(kind=labels["speaker"].map(kind))
    evaluation = evaluate(features, labels, target="kind", group="speaker", folds=3, model="logistic")
    assert evaluation.task == "multiclass"
    assert set(evaluation.metrics) == {
        "accuracy",
        "balanced_accuracy",
        "recall_lowpass",
        "recall_x",
        "recall_y",
    }
    assert evaluation.metrics["recall_lowpass"]["value"] >= 0.9
    matrix = np.array(evaluation.confusion_matrix["matrix"])
    assert evaluation.confusion_matrix["labels"] == ["lowpass", "x", "y"] and matrix.sum() == 36
    assert (evaluation.bands["effect_size"].between(0, 1)).all()


def test_segments_keep_their_times_in_predictions_and_folds(corpus, tmp_path):
    folder, _, labels = corpus
    manifest = pd.DataFrame(
        [
            {"file": file, "start": start, "end": start + 1.5}
            for file in labels["file"]
            for start in (0.0, 1.5)
        ]
    )
    manifest.to_csv(folder / "audio" / "segments.csv", index=False)
    features = tmp_path / "segments.csv"
    extracted = speechae(
        "extract", folder / "audio" / "segments.csv", "--root", folder / "audio", "-o", features
    )
    assert extracted.returncode == 0, extracted.stderr
    evaluation = evaluate(features, labels, target="diagnosis", group="speaker", folds=3)
    assert evaluation.details["counts"]["recordings"] == 72
    assert list(evaluation.predictions.columns[:3]) == ["file", "start", "end"]
    folds = evaluation.results()["folds"]
    assert len(folds) == 72 and "spk00/take0.wav[0-1.5]" in folds and "spk00/take0.wav[1.5-3]" in folds


def test_group_labels_predefined_folds_and_left_out_files(corpus):
    _, features, labels = corpus
    per_group = labels.groupby("speaker", as_index=False)["diagnosis"].first().assign(file=None)
    per_group["cohort"] = ["A" if int(s[3:]) < 6 else "B" for s in per_group["speaker"]]
    extra = pd.DataFrame({"file": ["missing/take0.wav"], "speaker": ["spk99"], "diagnosis": ["hc"]})
    dropped = per_group[per_group["speaker"] != "spk11"]  # its files keep no label
    evaluation = evaluate(
        features, pd.concat([dropped, extra]), target="diagnosis", group="speaker", split="cohort"
    )
    assert evaluation.details["counts"]["recordings"] == 33
    kinds = [(w["kind"], w["message"]) for w in evaluation.warnings]
    assert (
        "labels",
        "1 file(s) in labels have no features (not extracted, or they failed) and are left out",
    ) in kinds
    assert ("labels", "3 file(s) of the features table (3 row(s)) have no label and are left out") in kinds
    first = evaluation.predictions.groupby("group")["fold"].first()
    assert set(first[first.index < "spk06"]) == {0} and set(first[first.index >= "spk06"]) == {1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.assign(diagnosis=np.where(t["file"] == "spk00/take1.wav", "hc", t["diagnosis"])),
         r"labels: the file spk00/take1.wav .*|labels: the group spk00 has files in two classes \(.*\)"),
        (lambda t: t.assign(diagnosis="pd"), r"the target 'diagnosis' has one value only \('pd'\)"),
        (lambda t: t[(t["diagnosis"] == "hc") | t["speaker"].isin(["spk00", "spk02"])],
         r"labels: the class 'pd' has 2 group\(s\), fewer than the 5 folds .*use --folds 2"),
        (lambda t: t.drop(columns="speaker"),
         r"labels: no column 'speaker' \(found file, diagnosis, severity\)"),
    ],
)  # fmt: skip
def test_labels_that_cannot_be_used_are_refused_in_one_sentence_before_any_work(corpus, change, message):
    _, features, labels = corpus
    with pytest.raises(LabelsError, match=message):
        evaluate(features, change(labels), target="diagnosis", group="speaker")


def test_the_outputs_never_replace_an_input(corpus, tmp_path):
    _, features, labels = corpus
    labels.to_csv(tmp_path / "labels.csv", index=False)
    before = (tmp_path / "labels.csv").read_bytes()
    run = speechae(
        "evaluate", features, "--labels", tmp_path / "labels.csv", "--target", "diagnosis",
        "--group", "speaker", "-o", tmp_path / "r.json", "--report", tmp_path / "labels.csv",
    )  # fmt: skip
    assert run.returncode == 1 and "this run would write it, but it is also an input" in run.stderr
    assert (tmp_path / "labels.csv").read_bytes() == before and not (tmp_path / "r.json").exists()


def test_an_anonymised_report_names_no_file_and_no_speaker(corpus, tmp_path):
    from speechae.evaluation.report import write_evaluation_report

    _, features, labels = corpus
    evaluation = evaluate(features, labels, target="diagnosis", group="speaker", folds=3)
    write_evaluation_report(evaluation, tmp_path / "r.html", anonymise=True)
    page = re.sub(r"base64,[^\"]*", "", (tmp_path / "r.html").read_text())  # figures may hold any letters
    assert "spk" not in page and "take0" not in page and str(features) not in page
    assert 'id="groups"' in page and page.count("S-") >= 12


# Parts on arrays, without recordings or weights.


def test_the_metrics_equal_scikit_learns():
    from sklearn import metrics

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 60)
    score = truth + rng.standard_normal(60)
    predicted = (score > 0.5).astype(int)
    ours = binary_metrics(truth, predicted, score)
    assert ours["roc_auc"] == pytest.approx(metrics.roc_auc_score(truth, score))
    assert ours["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(truth, predicted))
    assert ours["specificity"] == pytest.approx(metrics.recall_score(truth, predicted, pos_label=0))
    classes = np.array(list("abc"))[rng.integers(0, 3, 60)]
    guessed = np.where(rng.random(60) < 0.6, classes, "a")
    multi = multiclass_metrics(["a", "b", "c"])(classes, guessed, None)
    assert multi["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(classes, guessed))
    assert multi["recall_b"] == pytest.approx(
        metrics.recall_score(classes, guessed, labels=["b"], average=None)[0]
    )
    values = rng.standard_normal(60)
    fitted = values + rng.standard_normal(60)
    regression = regression_metrics(values, fitted)
    assert regression["mae"] == pytest.approx(metrics.mean_absolute_error(values, fitted))
    assert regression["pearson_r"] == pytest.approx(stats.pearsonr(values, fitted).statistic)


def test_bootstrap_intervals_resample_whole_groups_and_undefined_is_nan():
    truth = np.array([1, 1, 0, 0, 1, 0])
    score = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3])
    groups = np.array(["a", "a", "b", "b", "c", "d"])
    intervals = bootstrap_intervals(binary_metrics, [(truth, (score > 0.5).astype(int), score)], groups)
    assert intervals["accuracy"] == {"value": 1.0, "ci95": [1.0, 1.0]}
    one_class = bootstrap_intervals(
        binary_metrics, [(np.ones(4, int), np.ones(4, int), np.ones(4))], groups[:4]
    )
    assert np.isnan(one_class["roc_auc"]["value"]) and np.isnan(one_class["roc_auc"]["ci95"]).all()


def test_effects_are_computed_on_one_value_per_group():
    values = pd.DataFrame({"m": [1.0, 1.0, 1.0, 1.0, 5.0, 2.0, 3.0, 4.0]})
    classes = pd.Series([1, 1, 1, 1, 1, 0, 0, 0])
    groups = pd.Series(["a", "a", "a", "a", "b", "c", "d", "e"])  # group a counts once
    effect = group_effects(values, classes, groups, task="binary").loc["m"]
    expected = stats.ttest_ind([1.0, 5.0], [2.0, 3.0, 4.0])
    pooled = np.sqrt((np.var([1.0, 5.0], ddof=1) + 2 * np.var([2.0, 3.0, 4.0], ddof=1)) / 3)
    assert effect["effect_size"] == pytest.approx((3.0 - 3.0) / pooled)
    assert effect["p_value"] == pytest.approx(expected.pvalue)
    q = benjamini_hochberg(np.array([0.01, 0.02, 0.03, 0.5]))
    np.testing.assert_allclose(q, stats.false_discovery_control([0.01, 0.02, 0.03, 0.5]))


def test_the_task_follows_the_target():
    assert choose_task(pd.Series(["PD", "HC"] * 3)) == "binary"
    assert choose_task(pd.Series(list("abcab"))) == "multiclass"
    assert choose_task(pd.Series([1.5, 2.0, 7.0])) == "regression"
    assert choose_task(pd.Series([0, 1, 1, 0])) == "binary"
    with pytest.raises(LabelsError, match="11 non-numeric values: too many classes"):
        choose_task(pd.Series([f"c{k}" for k in range(11)]))
    with pytest.raises(LabelsError, match="not numeric, so it cannot be a regression"):
        choose_task(pd.Series(["a", "b"]), "regression")


def test_label_paths_are_matched_as_the_extraction_named_its_files(tmp_path):
    table = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["s1/a.wav", "s2/b.wav"], name="file"))
    labels = pd.DataFrame(
        {"file": [str(tmp_path / "s1" / "a.wav"), "s2/b.wav"], "speaker": ["s1", "s2"], "y": [0, 1]}
    )
    matched = match_labels(table, labels, target="y", group="speaker", root=tmp_path)
    assert matched.target.tolist() == [0, 1] and matched.warnings == []
    with pytest.raises(LabelsError, match=r"the file s1/a\.wav has two values of 'y': 0 and 1"):
        match_labels(table, pd.concat([labels, labels.iloc[:1].assign(y=1)]), target="y", group="speaker",
                     root=tmp_path)  # fmt: skip


def test_outputs_are_named_after_the_results_and_settings_are_checked():
    assert [p.name for p in evaluation_paths("x/r.json").values()] == [
        "r.json", "r.json.bands.csv", "r.json.predictions.csv",
    ]  # fmt: skip
    with pytest.raises(ParameterError, match="--aggregate must be one of recording, group"):
        evaluate(pd.DataFrame(), pd.DataFrame(), target="y", group="g", aggregate="speaker")


def test_the_sites_scikit_learn_example_finds_the_planted_effect(corpus, monkeypatch, capsys, tmp_path):
    from conftest import REPO

    folder, _, labels = corpus
    page = (REPO / "docs" / "how-to" / "classifier.md").read_text()
    example = next(block for block in page.split("```python\n")[1:] if "AutoencoderFeatures(" in block)
    example = example.split("```", 1)[0]
    (tmp_path / "corpus").symlink_to(folder / "audio")  # the site's layout: corpus/labels.csv
    labels.to_csv(folder / "audio" / "labels.csv", index=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "docs/how-to/classifier.md", "exec"), {"__name__": "__main__"})
    uar = float(capsys.readouterr().out.split("UAR:")[1])
    assert uar >= 0.9


@pytest.fixture(scope="module")
def tremor(tmp_path_factory):
    """12 speakers cut from one recording (one channel), the speakers of one class with a 5.5 Hz tremor."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside this checkout")
    from speechae.audio import read_audio

    folder = tmp_path_factory.mktemp("tremor")
    samples, rate = read_audio(CORPUS / "aeneas_de.mp3")
    rows = []
    for number in range(12):
        speaker, diagnosis = f"spk{number:02d}", "pd" if number % 2 == 0 else "hc"
        for take in range(2):
            first = int((2 * number + take) * 2.8 * rate)
            excerpt = samples[first : first + int(2.8 * rate)].copy()
            if diagnosis == "pd":
                excerpt *= 1 + 0.6 * np.sin(2 * np.pi * 5.5 * np.arange(len(excerpt)) / rate)
            path = folder / "audio" / speaker / f"take{take}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.5 * excerpt / np.abs(excerpt).max(), rate)
            rows.append({"file": f"{speaker}/take{take}.wav", "speaker": speaker, "diagnosis": diagnosis})
    features = folder / "features.parquet"
    extracted = speechae(
        "extract", folder / "audio", "--recursive", "--root", folder / "audio", "-o", features, "-q"
    )
    assert extracted.returncode == 0, extracted.stderr
    return features, pd.DataFrame(rows)


def test_classes_that_differ_in_speech_only_raise_no_confound_warning(tremor):
    features, labels = tremor
    evaluation = evaluate(features, labels, target="diagnosis", group="speaker", folds=3)
    assert "confound" not in [w["kind"] for w in evaluation.warnings]
    assert all(
        effect["q_value"] is None or effect["q_value"] >= 0.05
        for effect in evaluation.results()["confounds"].values()
    )


def test_covariates_are_compared_and_a_missing_quality_file_is_a_warning(tremor, tmp_path):
    import shutil

    features, labels = tremor
    labels = labels.assign(age=[60 + 2 * int(s[3:]) for s in labels["speaker"]], sex=["f", "m"] * 12)
    evaluation = evaluate(
        features, labels, target="diagnosis", group="speaker", folds=3, covariates=["age", "sex"]
    )
    assert {"age", "sex=m", "snr_db", "bandwidth_hz"} <= set(evaluation.confounds)
    copied = tmp_path / "features.parquet"
    shutil.copy(features, copied)
    without = evaluate(copied, labels, target="diagnosis", group="speaker", folds=3)
    assert without.confounds is None and without.quality_only is None
    assert [w["kind"] for w in without.warnings] == ["quality"]
    assert "no quality measures beside" in without.warnings[0]["message"]
