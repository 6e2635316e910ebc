"""LSTM autoencoder: how badly a small recurrent network rebuilds a row (PyTorch, on the CPU).

The score of a row is its mean squared reconstruction error after standardising each column on
the training rows: the network learns to squeeze normal rows through a small code and rebuild
them, and a row unlike anything seen in training comes back wrong.

**What the LSTM reads.** Detectors score rows, one at a time, and know nothing of time (the
live path scores one point per call and must give the batch numbers, and a row's score must
not depend on the other rows of a call). The model's feature rows already look back in time
(z-scores over 15 min .. 12 h, differences, the one-day seasonal difference and its EWMAs), so
the sequence the LSTM reads is the row itself cut into steps: with ``groups`` (the model passes
its per-metric column groups) one step per metric, each step the same kinds of features of
one metric; the network's weights are shared across the metrics, so a 38-metric server needs
no more parameters than a 3-metric cluster (about 5,000 at the defaults). Without ``groups``
the columns are cut, in order, into at most ``max_steps`` equal blocks. Groups of unequal size
are padded with zeros that the loss and the score ignore.

The network is the classic sequence autoencoder: an encoder LSTM whose last hidden state is
the code, repeated at every step into a decoder LSTM, and a linear layer from the decoder's
state back to the step's features.

**Training** is bounded: at most ``max_train_rows`` rows (a seeded uniform subsample), at most
``max_epochs`` epochs of Adam on float32, early stopping when the loss on a held-out tail of
the training rows (the last ``validation_fraction``, the most recent rows) has not improved
for ``patience`` epochs; the weights of the best epoch are kept. It is deterministic: the
initial weights and the batch order come from ``random_state``, PyTorch runs with
deterministic algorithms and ``n_threads`` threads (both restored afterwards), so one seed
gives one network. Scoring runs in float64 from the float32 weights, so a row's score is the
same however the rows are batched.

**Saving.** The fitted network is held as plain numpy arrays (``weights_``) next to the
architecture numbers (``hidden_size``, ``layout_``); the torch module is rebuilt from them on
first use after loading and is never saved, so a bundle holds no pickle and no torch object.
PyTorch is an optional dependency (``pip install 'aws-anomaly[deep]'``): importing this module
does not import it, and fitting or scoring without it raises a one-line :class:`ConfigError`
naming the extra.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from aws_anomaly.detectors.base import (
    BaseDetector,
    check_float_param,
    check_int_param,
    check_random_state_param,
    seed_from,
    subsample_index,
)
from aws_anomaly.errors import ConfigError

__all__ = ["LSTMAutoencoderDetector", "torch_available"]

#: Rows per scoring chunk (float64 activations of a few MB at 40 steps x 20 features).
_CHUNK = 4096
#: Held-out rows at most, for the early-stopping loss.
_MAX_VALIDATION_ROWS = 2000
#: Fewer training rows than this: no held-out tail, ``max_epochs`` epochs on all of them.
_MIN_ROWS_FOR_VALIDATION = 50
#: An epoch improves on the best one when its held-out loss is lower by this share.
_MIN_IMPROVEMENT = 1e-3

_EXTRA_HINT = ("install the 'deep' extra: pip install 'aws-anomaly[deep]' (a CPU build of "
               "PyTorch is enough)")


def torch_available() -> bool:
    """Whether PyTorch can be imported (without importing it twice)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ConfigError(f"the lstm_ae detector needs PyTorch, which is not installed; "
                          f"{_EXTRA_HINT}") from None
    return torch


@contextlib.contextmanager
def _torch_settings(torch: Any, n_threads: int) -> Iterator[None]:
    """Deterministic algorithms and a fixed intra-op thread count, restored on exit."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(n_threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def _build_net(torch: Any, n_in: int, hidden: int) -> Any:
    """The sequence autoencoder: encoder LSTM -> code -> decoder LSTM -> linear."""
    nn = torch.nn

    class SequenceAutoencoder(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.LSTM(n_in, hidden, batch_first=True)
            self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
            self.output = nn.Linear(hidden, n_in)

        def forward(self, x: Any) -> Any:
            _, (h, _) = self.encoder(x)
            code = h[-1].unsqueeze(1).expand(-1, x.shape[1], -1)
            out, _ = self.decoder(code)
            return self.output(out)

    return SequenceAutoencoder()


class LSTMAutoencoderDetector(BaseDetector):
    """Reconstruction error of an LSTM sequence autoencoder (higher = more anomalous).

    Parameters
    ----------
    groups
        None, or a list of column-index lists: one sequence step per list (the model passes
        one per metric). Columns in no list are read as extra steps, in blocks as large as the
        largest group; a column may sit in several lists.
    max_steps
        Without ``groups``: the columns are cut, in order, into at most this many steps.
    hidden_size
        Size of both LSTMs' state and of the code.
    max_epochs, patience
        At most ``max_epochs`` passes over the training rows; stop after ``patience`` epochs
        without a better held-out loss.
    batch_size, learning_rate
        Adam's mini-batch size and step size.
    max_train_rows
        Rows trained on at most (a seeded uniform subsample of the rows before the held-out
        tail).
    validation_fraction
        Share of the training rows, the last ones, held out for early stopping (none below 50
        rows).
    contamination
        Fraction of training rows that ``predict`` calls anomalous (sets ``offset_``).
    random_state
        Seed of the initial weights, the subsample and the batch order.
    n_threads
        PyTorch threads while fitting and scoring.

    Attributes
    ----------
    layout_ : ndarray (n_steps, step_width) of int
        The column read at each step and position, -1 for padding.
    center_, scale_ : ndarray (n_features,)
        Column standardisation learnt on the training rows.
    weights_ : dict of str -> ndarray
        The network's parameters (float64 copies of the trained float32 values).
    n_epochs_ : int
        Epochs run; ``best_epoch_`` the one whose weights were kept.
    train_loss_, validation_loss_ : list of float
        Mean loss per epoch (``validation_loss_`` empty without a held-out tail).
    offset_ : float
    """

    def __init__(self, *, groups: Sequence[Sequence[int]] | None = None, max_steps: int = 64,
                 hidden_size: int = 16, max_epochs: int = 25, patience: int = 3,
                 batch_size: int = 256, learning_rate: float = 0.005,
                 max_train_rows: int = 5000, validation_fraction: float = 0.1,
                 contamination: float = 0.01, random_state: int | None = None,
                 n_threads: int = 1) -> None:
        self.groups = groups
        self.max_steps = max_steps
        self.hidden_size = hidden_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_train_rows = max_train_rows
        self.validation_fraction = validation_fraction
        self.contamination = contamination
        self.random_state = random_state
        self.n_threads = n_threads

    # ------------------------------------------------------------------ parameters, layout
    def _check_params(self) -> None:
        owner = type(self).__name__
        check_int_param(owner, "max_steps", self.max_steps, low=1)
        check_int_param(owner, "hidden_size", self.hidden_size, low=1)
        check_int_param(owner, "max_epochs", self.max_epochs, low=1)
        check_int_param(owner, "patience", self.patience, low=1)
        check_int_param(owner, "batch_size", self.batch_size, low=1)
        check_int_param(owner, "max_train_rows", self.max_train_rows, low=2)
        check_int_param(owner, "n_threads", self.n_threads, low=1)
        check_float_param(owner, "learning_rate", self.learning_rate, low=0.0, high=1.0)
        check_float_param(owner, "validation_fraction", self.validation_fraction, low=0.0,
                          high=0.5, low_open=False, high_open=True)
        check_random_state_param(owner, self.random_state)

    def _layout(self, n_features: int) -> np.ndarray:
        """(n_steps, width) column indices, -1 = padding."""
        owner = type(self).__name__
        if self.groups is None:
            steps = min(self.max_steps, n_features)
            width = math.ceil(n_features / steps)
            blocks = [list(range(s, min(s + width, n_features)))
                      for s in range(0, n_features, width)]
        else:
            if isinstance(self.groups, (str, bytes)) or not isinstance(self.groups, Sequence) \
                    or not self.groups:
                raise ConfigError(f"{owner}: groups must be None or a non-empty list of "
                                  f"column-index lists, got {self.groups!r}")
            blocks = []
            for k, group in enumerate(self.groups):
                try:
                    idx = np.asarray(group, dtype=np.int64).reshape(-1)
                except (TypeError, ValueError):
                    idx = np.empty(0, dtype=np.int64)
                if idx.size == 0 or idx.min() < 0 or idx.max() >= n_features:
                    raise ConfigError(f"{owner}: group {k} must be a non-empty list of column "
                                      f"indices in [0, {n_features}), got {group!r}")
                blocks.append(idx.tolist())
            width = max(len(b) for b in blocks)
            seen = {c for b in blocks for c in b}
            rest = [c for c in range(n_features) if c not in seen]
            blocks += [rest[s:s + width] for s in range(0, len(rest), width)]
        layout = np.full((len(blocks), width), -1, dtype=np.int64)
        for s, block in enumerate(blocks):
            layout[s, :len(block)] = block
        return layout

    def _sequences(self, X: np.ndarray) -> np.ndarray:
        """Standardised rows as (n, n_steps, width) sequences, padding 0."""
        Z = (X - self.center_) / self.scale_
        seq = Z[:, np.maximum(self.layout_, 0)]
        seq[:, self.layout_ < 0] = 0.0
        return seq

    # ------------------------------------------------------------------ the network
    def _module(self, torch: Any, dtype: Any) -> Any:
        net = _build_net(torch, self.layout_.shape[1], self.hidden_size)
        state = {name.replace("__", "."): torch.from_numpy(np.array(w, dtype=np.float64))
                 for name, w in self.weights_.items()}
        net.load_state_dict(state)
        return net.to(dtype).eval()

    def _scoring_net(self) -> Any:
        """The float64 module rebuilt from ``weights_`` once (kept, never saved)."""
        net = self.__dict__.get("_net")
        if net is None:
            torch = _torch()
            net = self.__dict__["_net"] = self._module(torch, torch.float64)
        return net

    def __getstate__(self) -> dict:  # type: ignore[type-arg]
        state = super().__getstate__()
        state.pop("_net", None)  # rebuilt from weights_ on first use
        return state

    # ------------------------------------------------------------------ fit / score
    def _fit(self, X: np.ndarray) -> np.ndarray:
        self.layout_ = self._layout(X.shape[1])  # a bad layout is named even without torch
        torch = _torch()
        self.center_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > 1e-12 * (1.0 + np.abs(self.center_)), std, 1.0)
        self.__dict__.pop("_net", None)
        seed = seed_from(self.random_state)
        n = X.shape[0]
        n_val = int(n * self.validation_fraction)
        if n < _MIN_ROWS_FOR_VALIDATION or n_val < 2:
            n_val = 0
        fit_rows = np.arange(n - n_val)
        idx = subsample_index(len(fit_rows), self.max_train_rows, seed)
        if idx is not None:
            fit_rows = fit_rows[idx]
        val_rows = np.arange(n - n_val, n)
        idx = subsample_index(len(val_rows), _MAX_VALIDATION_ROWS, seed + 1)
        if idx is not None:
            val_rows = val_rows[idx]
        mask = np.broadcast_to(self.layout_ >= 0, (1, *self.layout_.shape))
        with _torch_settings(torch, self.n_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _build_net(torch, self.layout_.shape[1], self.hidden_size).float()
            gen = torch.Generator().manual_seed(seed)
            weight = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))
            train = torch.from_numpy(self._sequences(X[fit_rows]).astype(np.float32))
            val = torch.from_numpy(self._sequences(X[val_rows]).astype(np.float32))
            self._train(torch, net, train, val, weight, gen)
        self.weights_ = {name.replace(".", "__"): p.detach().numpy().astype(np.float64)
                         for name, p in net.state_dict().items()}
        return self._score(X)

    def _train(self, torch: Any, net: Any, train: Any, val: Any, weight: Any,
               gen: Any) -> None:
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        per_row = float(weight.sum())

        def loss_of(batch: Any) -> Any:
            return (((net(batch) - batch) ** 2) * weight).sum() / (per_row * len(batch))

        best, best_state, stale = math.inf, None, 0
        self.train_loss_: list[float] = []
        self.validation_loss_: list[float] = []
        self.best_epoch_ = 0
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            order = torch.randperm(len(train), generator=gen)
            total = 0.0
            for s in range(0, len(train), self.batch_size):
                batch = train[order[s:s + self.batch_size]]
                loss = loss_of(batch)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                total += float(loss.detach()) * len(batch)
            self.train_loss_.append(total / len(train))
            self.n_epochs_ = epoch
            if not len(val):
                self.best_epoch_ = epoch
                continue
            net.eval()
            with torch.inference_mode():
                v = sum(float(loss_of(val[s:s + _CHUNK])) * len(val[s:s + _CHUNK])
                        for s in range(0, len(val), _CHUNK)) / len(val)
            self.validation_loss_.append(v)
            if v < best * (1.0 - _MIN_IMPROVEMENT):
                best, stale, self.best_epoch_ = v, 0, epoch
                best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)

    def _errors(self, X: np.ndarray) -> np.ndarray:
        """Squared reconstruction errors per (row, step, position), padding 0."""
        torch = _torch()
        net = self._scoring_net()
        out = np.empty((X.shape[0], *self.layout_.shape))
        with _torch_settings(torch, self.n_threads), torch.inference_mode():
            for s in range(0, X.shape[0], _CHUNK):
                seq = torch.from_numpy(self._sequences(X[s:s + _CHUNK]))
                out[s:s + _CHUNK] = ((net(seq) - seq) ** 2).numpy()
        out[:, self.layout_ < 0] = 0.0
        return out

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._errors(X).sum(axis=(1, 2)) / float((self.layout_ >= 0).sum())

    def explain_samples(self, X: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per-feature squared reconstruction errors, (n, n_features), summing to the score.

        A column read at several steps gets the sum of its errors there; the rows add up to
        :meth:`score_samples` exactly (up to rounding). ``weights`` ``(n_features, k)``: those
        parts times ``weights`` (as :meth:`KNNDetector.explain_samples
        <aws_anomaly.detectors.knn.KNNDetector.explain_samples>`).
        """
        arr = self._validate(X, method="explain_samples", reset=False)
        err = self._errors(arr) / float((self.layout_ >= 0).sum())
        out = np.zeros_like(arr)
        real = self.layout_ >= 0
        cols = self.layout_[real]
        np.add.at(out.T, cols, err[:, real].T)
        return out if weights is None else out @ weights
