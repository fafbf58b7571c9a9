"""Hyperparameter search: the settings that give a model its lowest validation loss on a corpus, in a time budget.

Optuna, not KerasTuner, because
- its search space is defined by running code, so one table (SEARCH_SPACE) serves models whose settings
  differ (the width is `units` in an LSTM, `embedding_dim` in the transformer) without a hypermodel class per
  model, and each trial trains through musicgen.training as train.py does, not through a tuner's own loop;
- its TPE sampler learns which values did well, and its median pruner stops a trial whose validation loss after
  an epoch is worse than the median of the earlier trials after as many epochs;
- a search lives in one SQLite file whose values are JSON, nothing pickled, and `load_if_exists` resumes it
  after a kill; KerasTuner would keep its state in trial folders of its own.

Each trial is a training run in <output>/trial-NNN/, which generate.py and evaluate.py can use as any other,
trained by musicgen.training.train with one more Keras callback: after each epoch it reports the validation
loss to Optuna and stops the run when the trial is pruned or out of time.
"""

import csv
import dataclasses
import math
import time
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from musicgen import hyperparameters, plots
from musicgen.dataset import read_index
from musicgen.errors import UserError
from musicgen.files import atomic_path, write_json

STUDY_FILE, TRIALS_FILE, PLOT_FILE, BEST_FILE = "study.db", "trials.csv", "trials.png", "best.json"


@dataclasses.dataclass(frozen=True)
class Multiples:
    """Whole numbers: these multiples of the base value, so that one rule fits small and large models."""

    factors: tuple

    def distribution(self, base):
        return CategoricalDistribution(sorted({max(1, round(base * factor)) for factor in self.factors}))


@dataclasses.dataclass(frozen=True)
class LogRange:
    """Any value from `low` to `high` times the base value, drawn evenly on a log scale."""

    low: float
    high: float

    def distribution(self, base):
        return FloatDistribution(base * self.low, base * self.high, log=True)


@dataclasses.dataclass(frozen=True)
class Steps:
    """A value from `low` to `high` in steps of `step`, whatever the base value."""

    low: float
    high: float
    step: float

    def distribution(self, base):
        return FloatDistribution(self.low, self.high, step=self.step)


# What a search varies, each setting around its value in the base settings: the model's defaults (models/*.py),
# changed by --config and --set. A model is searched over the settings it has; "width" is the setting WIDTH names.
SEARCH_SPACE = {
    "learning_rate": LogRange(0.1, 3),  # 1e-4 .. 3e-3 around the recurrent models' 1e-3
    "width": Multiples((0.5, 1, 2)),
    "layers": Multiples((0.5, 1, 1.5)),  # depth: lstm 1..3, transformer 2..6 blocks; seq2seq and vae have none
    "dropout": Steps(0.0, 0.4, 0.05),
    "seq_len": Multiples((0.5, 1, 2)),  # the window: tokens of context per training example
    "batch_size": Multiples((0.5, 1, 2, 4)),
}
# The size of the stream most of a model's weights act on (the cnn's residual channels); "units" for the others.
WIDTH = {"transformer": "embedding_dim", "cnn": "channels"}
# How long a trial trains is the search's business, not the model's: best.json leaves these to train.py.
RUN_LENGTH_SETTINGS = ("epochs", "patience", "random_seed")


def check_tunable(spec):
    if not spec.likelihood:
        raise UserError(f"the {spec.name} model has no likelihood to compare settings by (its validation loss is "
                        "the critic's estimate); tune a model that predicts the next token")
    if not spec.keras:
        raise UserError(f"the {spec.name} model is counted, not trained by epochs, and chooses its order on the "
                        "validation split by itself; there is nothing to tune")


def check_limits(budget_minutes, max_trials):
    if not budget_minutes > 0:
        raise UserError(f"the time budget must be more than 0 minutes, got {budget_minutes}")
    if max_trials < 1:
        raise UserError(f"the search needs at least 1 trial, got {max_trials}")


def search_space(spec, base):
    """{setting: Optuna distribution} of the settings `spec`'s model has, around their `base` values."""
    space = {}
    for name, rule in SEARCH_SPACE.items():
        setting = WIDTH.get(spec.name, "units") if name == "width" else name
        if setting in base:
            space[setting] = rule.distribution(base[setting])
    if "phrase_tokens" in base:  # seq2seq: a window holds the previous phrase and the next (models/seq2seq.py)
        space["seq_len"] = CategoricalDistribution([length for length in space["seq_len"].choices
                                                    if length >= 2 * base["phrase_tokens"]])
    return space


def search(spec, base, data_dir, output, budget_minutes, max_trials, log=print):
    """Train trials of `spec`'s model until `max_trials` have ended or the time budget is spent; returns the study.

    `base` holds the settings every trial starts from (resolved as train.py resolves them), its `epochs` and
    `patience` those of each trial. The budget counts the trials' time over every run of the search, so a
    resumed search gets what is left of it; a trial that runs out of it stops after the epoch it is in. Trials
    that end count towards `max_trials`: finished, pruned, or stopped by the budget.
    """
    check_tunable(spec)
    check_limits(budget_minutes, max_trials)
    read_index(data_dir)  # a missing data folder is refused before a study is made for it
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    study = _open_study(spec, base, data_dir, output)
    space = search_space(spec, base)
    if not study.trials:
        study.enqueue_trial({setting: base[setting] for setting in space}, user_attrs={"note": "the base settings"})
    _continue_interrupted(study, log)
    write_reports(study, spec, base, space, output)
    budget = 60 * budget_minutes
    while True:
        spent = seconds_spent(study)
        ended = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        if ended >= max_trials or spent >= budget:
            log(f"search done: {ended} of at most {max_trials} trials ended, {spent / 60:.1f} of "
                f"{budget_minutes:g} minutes spent")
            break
        trial = study.ask(space)
        trial.set_user_attr("run", trial.user_attrs.get("run", _run_name(trial.number)))
        log(f"trial {trial.number}: " + ", ".join(f"{key} {value:.3g}" for key, value in trial.params.items()))
        try:
            value = _train_trial(trial, spec, {**base, **trial.params}, data_dir, output, budget - spent, log)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except Exception as error:  # bugs and refused settings; Ctrl-C and kills leave it running, to be continued
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            study.tell(trial, state=TrialState.FAIL)
            write_reports(study, spec, base, space, output)
            raise
        else:
            study.tell(trial, value)
        write_reports(study, spec, base, space, output)
    return study


def seconds_spent(study):
    return sum(trial.user_attrs.get("seconds", 0.0) for trial in study.get_trials(deepcopy=False))


def best_settings(study, spec, base):
    """The best finished trial's settings as a train.py --config file: the model, the base settings that differ
    from its defaults, and the searched ones; None before any trial has finished."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    defaults = hyperparameters.defaults(spec)
    changed = {key: value for key, value in base.items()
               if key not in RUN_LENGTH_SETTINGS and value != defaults[key]}
    return {"model": spec.name, **changed, **_tidy(study.best_trial.params)}


def write_reports(study, spec, base, space, output):
    """trials.csv and trials.png, every trial so far, and best.json once a trial has finished."""
    rows = trial_rows(study, space)
    with atomic_path(Path(output) / TRIALS_FILE) as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["number", "state", *space, "best_val_loss", "epochs",
                                                        "seconds", "run", "note"])
            writer.writeheader()
            writer.writerows(rows)
    plot_trials(rows, space, Path(output) / PLOT_FILE)
    best = best_settings(study, spec, base)
    if best is not None:
        write_json(Path(output) / BEST_FILE, best)


def trial_rows(study, space):
    trials = study.get_trials(deepcopy=False)
    continued_by = {trial.user_attrs["continues"]: trial.number for trial in trials if "continues" in trial.user_attrs}
    rows = []
    for trial in trials:
        notes = [trial.user_attrs.get(key) for key in ("note", "stopped", "error")]
        if "continues" in trial.user_attrs:
            notes.append(f"continues trial {trial.user_attrs['continues']}")
        if trial.number in continued_by:
            notes.append(f"interrupted; continued by trial {continued_by[trial.number]}")
        attributes = trial.user_attrs
        rows.append({"number": trial.number, "state": trial.state.name.lower(),
                     **{setting: _tidy(trial.params).get(setting) for setting in space},
                     "best_val_loss": attributes.get("best_val_loss"), "epochs": attributes.get("epochs", 0),
                     "seconds": round(attributes.get("seconds", 0.0), 1), "run": attributes.get("run"),
                     "note": "; ".join(note for note in notes if note)})
    return rows


STATE_STYLES = {"complete": ("o", "#1f77b4"), "pruned": ("x", "#d62728"), "fail": ("s", "#7f7f7f"),
                "running": ("^", "#2ca02c")}


def plot_trials(rows, space, path):
    """Left, each trial's best validation loss at the search time it ended, with the best so far; right, the same
    losses against each searched setting."""
    plt = plots.pyplot()
    from matplotlib.ticker import NullFormatter

    figure = plt.figure(figsize=(15, 6))
    grid = figure.add_gridspec(2, 5)
    timeline = figure.add_subplot(grid[:, :2])
    minutes = [sum(row["seconds"] for row in rows[:index + 1]) / 60 for index in range(len(rows))]
    scored = [(row, minute) for row, minute in zip(rows, minutes)
              if row["best_val_loss"] is not None and math.isfinite(row["best_val_loss"])]
    for state, (marker, colour) in STATE_STYLES.items():
        points = [(minute, row["best_val_loss"]) for row, minute in scored if row["state"] == state]
        if points:
            timeline.scatter(*zip(*points), marker=marker, color=colour, label=state)
    best_so_far, best = [], math.inf
    for row, minute in scored:
        if row["state"] == "complete":
            best = min(best, row["best_val_loss"])
            best_so_far.append((minute, best))
    if best_so_far:
        best_so_far.append((scored[-1][1], best))  # on to the last trial drawn
        timeline.step(*zip(*best_so_far), where="post", color="black", linewidth=1, label="best so far")
    timeline.set_xlabel("search time (minutes)")
    timeline.set_ylabel("best validation loss (nats per token)")
    timeline.grid(alpha=0.3)
    if scored:
        timeline.legend()
    for index, (setting, distribution) in enumerate(space.items()):
        axis = figure.add_subplot(grid[index // 3, 2 + index % 3], sharey=timeline)
        for state, (marker, colour) in STATE_STYLES.items():
            points = [(row[setting], row["best_val_loss"]) for row, _ in scored
                      if row["state"] == state and row[setting] is not None]
            if points:
                axis.scatter(*zip(*points), marker=marker, color=colour, s=18)
        if isinstance(distribution, CategoricalDistribution):  # multiples of a base value
            axis.set_xscale("log", base=2)
            axis.set_xticks(distribution.choices, [str(choice) for choice in distribution.choices])
            axis.minorticks_off()
        elif distribution.log:
            axis.set_xscale("log")
            axis.set_xlim(distribution.low / 1.2, distribution.high * 1.2)  # the searched range
            axis.xaxis.set_minor_formatter(NullFormatter())  # 2e-4, 3e-4, ... would overlap
        else:
            margin = (distribution.high - distribution.low) / 20
            axis.set_xlim(distribution.low - margin, distribution.high + margin)
        axis.set_xlabel(setting)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    plots.save_figure(figure, path)


def _open_study(spec, base, data_dir, output):
    """The search in `output`: new, or the one a previous run of the same command left there."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search prints its own lines
    storage = f"sqlite:///{(output / STUDY_FILE).resolve()}"
    name = f"{spec.name} on {Path(data_dir).resolve()}"
    others = [study for study in optuna.get_all_study_names(storage) if study != name]
    if others:
        raise UserError(f"{output} holds the search of {others[0]}, not of {name}; choose another --output")
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    started_with = study.user_attrs.get("base")
    if started_with is None:
        study.set_user_attr("base", base)
    else:
        changed = [f"{key} {started_with.get(key)} -> {value}" for key, value in base.items()
                   if key not in hyperparameters.RESUMABLE_CHANGES and started_with.get(key) != value]
        if changed:
            raise UserError(f"the search in {output} started from other settings ({'; '.join(changed)}); "
                            "choose another --output for a new search")
    # Seeded afresh on every run, past the trials already drawn: a resumed search must not draw them again.
    study.sampler = optuna.samplers.TPESampler(seed=base["random_seed"] + len(study.trials), n_startup_trials=5)
    return study


def _continue_interrupted(study, log):
    """A trial that a kill or Ctrl-C left running is marked failed, and a new trial with its settings goes on
    training in its run folder after the last finished epoch. The search runs one trial at a time, so any trial
    still running when it starts was interrupted."""
    trials = study.get_trials(deepcopy=False)
    continued = {trial.user_attrs.get("continues") for trial in trials}
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        if trial.number not in continued:  # enqueued before the trial is failed: a kill in between loses nothing
            kept = {key: value for key, value in trial.user_attrs.items() if key == "note"}
            study.enqueue_trial(trial.params, user_attrs={**kept, "continues": trial.number,
                                                          "run": trial.user_attrs.get("run", _run_name(trial.number))})
        study.tell(trial.number, state=TrialState.FAIL)
        log(f"trial {trial.number} was interrupted; a new trial continues it")


def _tidy(params):
    """Settings as a person would write them: a dropout of 0.15, not Optuna's 0.15000000000000002 from its steps."""
    return {key: float(f"{value:.6g}") if isinstance(value, float) else value for key, value in params.items()}


def _run_name(number):
    return f"trial-{number:03d}"


def _train_trial(trial, spec, config, data_dir, output, seconds_left, log):
    """Train the trial's run, reporting each epoch's validation loss to Optuna; the best one, or TrialPruned."""
    import keras

    from musicgen import training
    from musicgen.runs import RUN_CONFIG_FILE, read_run_config

    run_dir = output / trial.user_attrs["run"]
    reporter = _epoch_reporter(trial, config["epochs"], seconds_left, log)
    if (run_dir / RUN_CONFIG_FILE).exists() and (run_dir / "last.keras").exists():  # an interrupted trial's epochs
        for row in read_run_config(run_dir)["progress"]["history"]:
            reporter.record(row["epoch"], row["val_loss"])
    if not reporter.stopped:
        training.train(spec, config, data_dir, run_dir, log=_quiet, verbose=0, callbacks=[reporter])
        keras.backend.clear_session()  # let go of this trial's model before the next is built
    if reporter.stopped:
        trial.set_user_attr("stopped", reporter.stopped)
        raise optuna.TrialPruned()
    log(f"  best validation loss {reporter.best:.4f} after {trial.user_attrs['epochs']} epochs, "
        f"{time.monotonic() - reporter.started:.0f} s")
    return reporter.best


def _epoch_reporter(trial, epochs, seconds_left, log):
    """A Keras callback that reports each epoch's validation loss to Optuna and stops the training when the
    trial is pruned or out of time; it runs after the run's own callbacks, which have saved the epoch."""
    import keras

    class EpochReporter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.started = time.monotonic()
            self.best = math.inf
            self.stopped = None  # why the trial stopped before its last epoch, if it did

        def on_epoch_end(self, epoch, logs=None):
            self.record(epoch + 1, float(logs["val_loss"]))
            self.model.stop_training = self.model.stop_training or self.stopped is not None

        def record(self, epoch, val_loss):
            self.best = min(self.best, val_loss)
            trial.report(val_loss, step=epoch - 1)
            log(f"  epoch {epoch}: validation loss {val_loss:.4f}")
            seconds = time.monotonic() - self.started
            for key, value in (("best_val_loss", self.best), ("epochs", epoch), ("seconds", seconds)):
                trial.set_user_attr(key, value)
            if epoch < epochs and trial.should_prune():
                self.stopped = f"pruned after epoch {epoch}"
                log(f"  pruned: worse than the median of earlier trials after epoch {epoch}")
            elif epoch < epochs and seconds >= seconds_left:
                self.stopped = "stopped by the time budget"
                log("  stopped: the time budget is spent")

    return EpochReporter()


def _quiet(line):
    """Training's own lines (device, parameters, resuming): said once per epoch here, so left unsaid."""
