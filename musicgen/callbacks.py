"""What happens after each epoch: checkpoints, early stopping, history, and how long the run has left."""

import time
from pathlib import Path

import keras

from musicgen.files import write_json
from musicgen.runs import RUN_CONFIG_FILE, write_history
from musicgen.saving import save_model


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: last.keras, best.keras when validation improved, progress, history, plot.

    Also does early stopping, keeping its counters in run_config.json so that a
    resumed run stops exactly where an uninterrupted one would have. Without
    `write_files` (on workers other than the chief) it keeps the progress alone.
    """

    def __init__(self, run_dir, run_config, write_files=True):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.run_config = run_config
        self.write_files = write_files

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        progress = self.run_config["progress"]
        improved = logs["val_loss"] < progress["best_val_loss"]
        if improved:
            if self.write_files:
                save_model(self.model, self.run_dir / "best.keras")
            progress.update(best_val_loss=logs["val_loss"], best_val_accuracy=logs.get("val_accuracy"),
                            best_epoch=epoch + 1, epochs_without_improvement=0)
        else:
            progress["epochs_without_improvement"] += 1
        progress["history"].append({"epoch": epoch + 1, **logs})
        progress["epochs_completed"] = epoch + 1
        if progress["epochs_without_improvement"] >= self.run_config["config"]["patience"]:
            progress["stopped_early"] = True
            self.model.stop_training = True
        if self.write_files:
            save_model(self.model, self.run_dir / "last.keras")
            write_json(self.run_dir / RUN_CONFIG_FILE, self.run_config)
            write_history(self.run_dir, progress["history"])


class TimeLeft(keras.callbacks.Callback):
    """One line after each epoch: the time it took and the estimated time left for the run.

    The estimate is the mean epoch time of this session times the epochs left:
    an upper bound, since early stopping may end the run sooner (it says how soon
    at the latest: after `patience` epochs without improvement).
    """

    def __init__(self, run_config, log=print):
        super().__init__()
        self.run_config = run_config
        self.log = log
        self.started = None
        self.epochs_timed = 0

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()
        self.epochs_timed = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_timed += 1
        progress, config = self.run_config["progress"], self.run_config["config"]
        per_epoch = (time.monotonic() - self.started) / self.epochs_timed
        left = config["epochs"] - (epoch + 1)
        stop_at_latest = config["patience"] - progress["epochs_without_improvement"]
        line = f"epoch {epoch + 1}/{config['epochs']} done, {per_epoch:.0f} s per epoch"
        if left and not progress["stopped_early"]:
            line += (f"; at most {_duration(left * per_epoch)} left ({left} epochs), less if validation stops "
                     f"improving (early stop within {min(stop_at_latest, left)} epochs without improvement)")
        self.log(line)


def _duration(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
