"""Training: the loss goes down, checkpoints are safe, a resumed run equals an
uninterrupted one, and DDP runs with two gloo processes."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dhif.evaluate
import dhif.training
import dhif.training.loop
import dhif.training.run_log
from dhif.data import PatchDataset, spectral_response
from dhif.data.synthetic import synthetic_scene
from dhif.models import DHIFNet
from dhif.checkpoint import load_checkpoint, model_from_checkpoint
from dhif.outputs import save_atomic
from dhif.training import TrainConfig, lr_factor, train


def tiny_config(out, **overrides):
    values = dict(out=str(out), scale=8, stages=1, width=4, head_width=8, epochs=2, samples_per_epoch=8,
                  batch_size=4, patch=32, lr=1e-3, val_every=0, device="cpu", seed=0, workers=0)
    values.update(overrides)
    return TrainConfig(**values)


def tiny_dataset(config):
    scenes = [synthetic_scene(64, seed=s) for s in range(2)]
    return PatchDataset(scenes, config.scale, spectral_response(), config.patch, config.samples_per_epoch, seed=1)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
@pytest.mark.filterwarnings("ignore:dhif train. bf16 autocast")  # a CPU without native bf16 is only slower
def test_short_training_lowers_the_loss(tmp_path, bf16):
    config = tiny_config(tmp_path, epochs=8, init_operators="physics", bf16=bf16)
    dataset = tiny_dataset(config)
    dataset.set_epoch(999)  # a fixed batch that training never sees
    lr, msi, hr = (torch.stack(t) for t in zip(*[dataset[i] for i in range(4)]))
    torch.manual_seed(config.seed)
    initial = DHIFNet(config, filter_impl=config.filter_impl)
    from dhif.models.physics import init_observation_operators

    init_observation_operators(initial, spectral_response())
    with torch.no_grad():
        before = F.l1_loss(initial(lr, msi), hr).item()
    result = train(config, tiny_dataset(config), srf=spectral_response(), progress=False)
    trained = model_from_checkpoint(result.checkpoint)
    with torch.no_grad():
        after = F.l1_loss(trained(lr, msi), hr).item()
    assert result.epoch == 8
    assert after < 0.9 * before, (before, after)
    # The model returned is the one saved, ready for inference.
    assert not result.model.training
    saved = trained.state_dict()
    assert all(torch.equal(value, saved[key]) for key, value in result.model.state_dict().items())


def test_identity_filters_are_where_training_starts(tmp_path):
    config = tiny_config(tmp_path, epochs=0, init_filters="identity")
    model = train(config, tiny_dataset(config), progress=False).model
    last = model.filters.heads[0][-1]
    assert last.weight.abs().sum() == 0
    assert last.bias.view(config.taps, -1)[config.taps // 2].eq(1).all()
    assert tiny_config(tmp_path).init_filters == "random"  # the paper's


def test_checkpoint_is_atomic_and_loads_weights_only(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    train(config, tiny_dataset(config), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "log.csv"]
    checkpoint = load_checkpoint(tmp_path / "last.pt")  # weights_only=True
    assert {"model", "optimizer", "scheduler", "epoch", "rng", "config"} <= set(checkpoint)
    assert checkpoint["epoch"] == 1 and checkpoint["config"]["width"] == 4
    assert (tmp_path / "log.csv").read_text().splitlines()[0] == "epoch,loss,lr,val_psnr,seconds,other_seconds"


def test_resume_continues_exactly(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    config = tiny_config(straight, epochs=3)
    train(config, tiny_dataset(config), progress=False)
    config = tiny_config(interrupted, epochs=1)
    train(config, tiny_dataset(config), progress=False)
    config = tiny_config(interrupted, epochs=3)  # the same command again, with more epochs
    train(config, tiny_dataset(config), progress=False)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(interrupted / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])


def test_resume_refuses_changed_settings_unless_asked(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    train(config, tiny_dataset(config), progress=False)
    for changed in (dict(lr=5e-4), dict(patch=16), dict(samples_per_epoch=16), dict(seed=3)):
        config = tiny_config(tmp_path, epochs=2, **changed)
        with pytest.raises(ValueError, match=f"{next(iter(changed))} .* -> .*--apply-changes"):
            train(config, tiny_dataset(config), progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1  # nothing trained
    with pytest.raises(ValueError, match="width 4 -> 8") as refused:
        train(tiny_config(tmp_path, epochs=2, width=8), None, progress=False, apply_changes=True)
    assert "--apply-changes" not in str(refused.value)  # the model itself cannot change
    config = tiny_config(tmp_path, epochs=2, lr=5e-4)
    train(config, tiny_dataset(config), progress=False, apply_changes=True)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 2 and checkpoint["config"]["lr"] == 5e-4
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4 * 0.95)  # epoch 2's decay
    with open(tmp_path / "log.csv") as f:
        assert [float(row["lr"]) for row in csv.DictReader(f)][1] == pytest.approx(5e-4 * 0.95)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_saves_mid_epoch_and_the_resumed_run_is_exact(tmp_path, monkeypatch, signum):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    config = tiny_config(straight, epochs=2, samples_per_epoch=16)  # 4 steps per epoch
    expected = train(config, tiny_dataset(config), progress=False)
    original, calls = dhif.training.loop.train_step, []

    def signal_at_step_6(*args):
        calls.append(1)
        if len(calls) == 6:  # epoch 2, step 2
            os.kill(os.getpid(), signum)
        return original(*args)

    monkeypatch.setattr(dhif.training.loop, "train_step", signal_at_step_6)
    config = tiny_config(stopped, epochs=2, samples_per_epoch=16)
    with pytest.raises(dhif.training.TrainingInterrupted, match=f"{signal.Signals(signum).name} stopped training at "
                       "epoch 2, step 2 of 4"):
        train(config, tiny_dataset(config), progress=False)
    assert len(calls) == 6  # stopped after the step in progress, not before it, not later
    saved = load_checkpoint(stopped / "last.pt")
    assert saved["epoch"] == 1 and saved["interrupted"]["count"] == 2
    resumed = train(config, tiny_dataset(config), progress=False)
    assert len(calls) == 8
    assert resumed.loss == pytest.approx(expected.loss, rel=1e-12)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(stopped / "last.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert "interrupted" not in b


def test_unwritable_output_fails_before_training(tmp_path):
    (tmp_path / "a_file").write_text("")
    config = tiny_config(tmp_path / "a_file" / "run")
    with pytest.raises(ValueError, match="cannot write to"):
        train(config, None, progress=False)  # the dataset is never touched


def test_a_failed_checkpoint_write_is_one_error_and_leaves_no_file(tmp_path, monkeypatch):
    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(ValueError, match="cannot write .*last.pt: PytorchStreamWriter"):
        save_atomic({"model": {}}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_rerunning_a_finished_run_reports_its_result(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    first = train(config, tiny_dataset(config), progress=False)
    again = train(config, tiny_dataset(config), progress=False)
    assert again.summary() == first.summary() and again.loss is not None


def test_learning_rate_schedule_is_the_papers():
    factor = lr_factor(TrainConfig())
    assert factor(0) == 1.0
    assert factor(1) == pytest.approx(0.95)
    assert factor(5) == pytest.approx(0.95)
    assert factor(6) == pytest.approx(0.95 ** 2)
    assert factor(146) == pytest.approx(0.95 ** 30)
    assert factor(400) == pytest.approx(0.95 ** 30)  # no decay after epoch 150


def test_learning_rate_epoch_by_epoch_is_the_authors(tmp_path, monkeypatch):
    """The authors call MultiStepLR(milestones=range(1, until, every), gamma).step(epoch) at
    the start of each 0-based epoch: epoch 0 at the base rate, epoch 1 decayed once, ... The
    rate the optimizer used in each epoch and the one in log.csv must both be that."""
    config = tiny_config(tmp_path, epochs=8, samples_per_epoch=4, lr_decay_every=2, lr_decay_until=7)
    used = []
    original = dhif.training.loop.train_step

    def spy(model, optimizer, *args):
        used.append(optimizer.param_groups[0]["lr"])
        return original(model, optimizer, *args)

    monkeypatch.setattr(dhif.training.loop, "train_step", spy)
    train(config, tiny_dataset(config), progress=False)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    authors = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=range(1, 7, 2), gamma=config.lr_decay)
    expected = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch) is deprecated, and what the authors call
        for epoch in range(config.epochs):
            authors.step(epoch)
            expected.append(optimizer.param_groups[0]["lr"])
    assert expected[:2] == [pytest.approx(1e-3), pytest.approx(0.95e-3)]
    assert used == pytest.approx(expected)
    with open(tmp_path / "log.csv") as f:
        logged = [float(row["lr"]) for row in csv.DictReader(f)]
    assert logged == pytest.approx(expected, rel=1e-5)


DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    from test_train import tiny_config, tiny_dataset
    from dhif.training import train
    config = tiny_config({out!r}, epochs=2)
    result = train(config, tiny_dataset(config), progress=False)
    with open(os.path.join({results!r}, "rank" + os.environ["RANK"] + ".json"), "w") as f:
        json.dump([result.epoch, result.loss], f)
""")


@pytest.mark.slow
def test_ddp_with_two_gloo_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "run"),
                                        results=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert results[0] == results[1]  # both ranks: same epochs, same all-reduced loss
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["epoch"] == 2
    # Two ranks each took half of every epoch's samples: one optimizer step per epoch each.
    assert checkpoint["optimizer"]["state"][0]["step"].item() == 2


def _train_command(cave, out):
    return [sys.executable, "-m", "dhif.cli", "train", "--cave", str(cave), "--train-scenes", "toy", "--val-every",
            "0", "--out", str(out), "--scale", "8", "--stages", "1", "--width", "4", "--head-width", "8",
            "--epochs", "3", "--samples", "400", "--patch", "32", "--workers", "1", "--device", "cpu"]


def _start_training(command, env):
    """A `dhif train` process, returned once it is taking steps, with its stderr so far."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    seen = ""
    # An epoch's progress bar past its first step (under DDP every rank has then taken one).
    while not re.search(r"epoch \d+/\d+: .*\| [1-9]\d*/\d+", seen):
        char = process.stderr.read(1)
        assert char, f"the run ended before training: {seen[-2000:]}"
        seen += char
    return process, seen


@pytest.mark.slow
def test_sigterm_and_the_folder_lock_on_real_runs(tmp_path):
    from test_data import write_cave_folder

    write_cave_folder(tmp_path / "cave", "toy", size=(64, 64))
    out = tmp_path / "run"
    command = _train_command(tmp_path / "cave", out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first, seen = _start_training(command, env)

    # A second run into the folder that a live run holds: one line naming the holder.
    for second in (command, [sys.executable, "-m", "dhif.cli", "demo", "--steps", "8", "--out", str(out)]):
        refused = subprocess.run(second, capture_output=True, text=True, env=env, timeout=120)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert refused.stderr.strip().count("\n") == 0
        assert f"{out} is in use by another dhif run (pid {first.pid} on " in refused.stderr

    # SIGTERM: the step finishes, the state is saved, one line says where, exit 128 + 15.
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, err[-2000:]
    lines = [line for line in (seen + err).replace("\r", "\n").splitlines() if "SIGTERM" in line]
    assert len(lines) == 2, lines  # "stopping after this step" once (not per worker), then where it is saved
    assert lines[-1].startswith("dhif train: SIGTERM stopped training at epoch ")
    assert lines[-1].endswith(f"the run's state is saved in {out / 'last.pt'}; run the same command to resume")
    saved = load_checkpoint(out / "last.pt")
    step = saved["interrupted"]["count"] + 1

    # Ctrl-C in `dhif train ... 2>&1 | tee log` also ends tee: the state is saved all the same.
    piped, _ = _start_training(command, env)
    piped.stdout.close()
    piped.stderr.close()
    piped.send_signal(signal.SIGINT)
    assert piped.wait(timeout=120) == 128 + signal.SIGINT
    resaved = load_checkpoint(out / "last.pt")["interrupted"]["count"]
    assert resaved > saved["interrupted"]["count"] or load_checkpoint(out / "last.pt")["epoch"] > saved["epoch"]
    saved = load_checkpoint(out / "last.pt")
    step = saved["interrupted"]["count"] + 1

    # The same command resumes; killed outright, it leaves its lock, which does not block the next run.
    killed, _ = _start_training(command, env)
    killed.kill()
    stdout, _ = killed.communicate(timeout=60)
    assert f"resuming {out / 'last.pt'} at epoch {saved['epoch'] + 1}, step {step}" in stdout
    assert json.loads((out / ".dhif-run.lock").read_text())["pid"] == killed.pid
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert load_checkpoint(out / "last.pt")["epoch"] == 3
    assert not (out / ".dhif-run.lock").exists()


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_rank_and_the_resumed_run_is_exact(tmp_path):
    from test_data import write_cave_folder

    write_cave_folder(tmp_path / "cave", "toy", size=(64, 64))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(out):
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                *_train_command(tmp_path / "cave", out)[2:]]

    straight = subprocess.run(torchrun(tmp_path / "straight"), capture_output=True, text=True, env=env, timeout=300)
    assert straight.returncode == 0, straight.stderr[-3000:]
    launcher, seen = _start_training(torchrun(tmp_path / "stopped"), env)
    launcher.send_signal(signal.SIGTERM)  # torchrun passes it on to every process of every rank
    _, err = launcher.communicate(timeout=240)
    stopped = [line for line in (seen + err).splitlines() if "SIGTERM stopped training at epoch" in line]
    assert len(stopped) == 2, (seen + err)[-3000:]  # both ranks, at the same step
    # The same step on both ranks; a progress bar may leave spaces before either line.
    assert len({line.split("] ")[-1].strip() for line in stopped}) == 1, stopped
    assert "interrupted" in load_checkpoint(tmp_path / "stopped" / "last.pt")
    resumed = subprocess.run(torchrun(tmp_path / "stopped"), capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["metrics"]["loss"] == pytest.approx(b["metrics"]["loss"], rel=1e-12)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_a_long_run_says_how_long_it_will_take(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dhif.training.run_log.LongRunEstimate, "LONG_RUN_S", 0)  # every run is "long" here
    monkeypatch.setattr(dhif.training.run_log.LongRunEstimate, "MEASURED_S", 0)
    config = tiny_config(tmp_path, epochs=2, samples_per_epoch=32)  # 8 steps per epoch
    train(config, tiny_dataset(config))
    said = [line for line in capsys.readouterr().out.splitlines() if "this run needs about" in line]
    assert len(said) == 1  # said once, after the first step and MEASURED_STEPS (10) more: 5 of 16 left
    assert re.fullmatch(r"dhif train: this run needs about \d+\.\d hours more on cpu \(\d+\.\d\d s per step, 5 "
                        r"steps to go\); fewer --epochs or --samples, or a GPU, shorten it", said[0])


def test_a_preset_sets_the_defaults_and_options_still_win():
    from dhif.cli import parse_args
    from dhif.training import PRESETS

    cpu = parse_args(["train", "--cave", "x", "--preset", "cpu"])
    for option, field in (("stages", "stages"), ("width", "width"), ("patch", "patch"), ("epochs", "epochs"),
                          ("samples", "samples_per_epoch"), ("initial_estimate", "initial_estimate")):
        assert getattr(cpu, option) == PRESETS["cpu"][field], option
    # An option given on the command line wins over the preset, wherever it is written.
    assert parse_args(["train", "--cave", "x", "--stages", "4", "--preset", "cpu"]).stages == 4
    paper = parse_args(["train", "--cave", "x"])
    assert (paper.stages, paper.width, paper.epochs, paper.initial_estimate) == (4, 64, 500, "bicubic")
    with pytest.raises(ValueError, match="unknown preset 'gpu'; use one of paper, cpu"):
        TrainConfig.from_preset("gpu")


def test_the_cpu_preset_reaches_the_run_with_the_fields_that_have_no_option(tmp_path, monkeypatch, cave_dir):
    from dhif.cli import main

    seen = {}
    nothing_trained = dhif.training.TrainingResult(0, None, None, str(tmp_path / "run" / "last.pt"), None)
    monkeypatch.setattr(dhif.training, "train", lambda config, *a, **k: seen.update(config=config) or nothing_trained)
    monkeypatch.setattr(dhif.evaluate, "scene_validator", lambda *a: None)
    assert main(["train", "--cave", str(cave_dir), "--preset", "cpu", "--train-scenes", "balloons", "--val-every",
                 "0", "--out", str(tmp_path / "run")]) == 0
    config = seen["config"]
    assert (config.lr_decay_until, config.init_operators, config.head_width) == (
        dhif.training.PRESETS["cpu"]["lr_decay_until"], "physics", 32)


def test_the_whole_run_bar_shows_elapsed_and_left(tmp_path):
    from dhif.training.run_log import RunLog

    log = RunLog(tmp_path, tiny_config(tmp_path, epochs=10), main=True, progress=True, steps_per_epoch=2,
                 start_epoch=0)
    log.epoch_done(0, 0.5, 1e-3, None, 1.0, 0.0)
    shown = str(log.bar)
    log.close()
    assert re.search(r"1/10 epochs \[\d\d:\d\d elapsed, [\d:?]+ left\]", shown), shown
