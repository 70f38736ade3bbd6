"""Exact and near-duplicate detection of source files, before the split.

Exact duplicates share a hash of their normalised text (comments and whitespace removed), so a
re-indented or re-commented copy is still one. Near duplicates are found with MinHash LSH
(``datasketch``) over 5-gram shingles of words, runs of ``[A-Za-z0-9_]`` split on everything else
(the convention of the MinHash scripts behind The Stack, text-dedup's ``NON_ALPHA``): a file
whose estimated Jaccard similarity to a file kept earlier reaches ``threshold`` is dropped,
whichever project it is in. The first copy in the corpus's fixed order (projects by name, files
by path) is the one kept, so the result does not depend on how the work was spread over processes.

Signatures are computed in the worker processes; only the LSH index (a few hundred bytes per
kept file) lives in the main process. ``datasketch`` is imported there only, when the index is
built, and without the scipy it would pull in (:func:`_datasketch`).
"""

from __future__ import annotations

import hashlib
import re
import sys
import types
import zlib
from functools import lru_cache
from dataclasses import dataclass

import numpy as np

_COMMENT = re.compile(r"(?m)#[^\n\"']*$")
_WORD_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789"
_SEPARATORS_TO_SPACE = bytes(b if b in _WORD_BYTES else 0x20 for b in range(256))


def words(data: bytes) -> list[bytes]:
    """``re.split(rb"[^A-Za-z_0-9]+", data)`` (an empty word before a leading and after a trailing
    separator included), 2x faster: separators become spaces, then ``bytes.split`` cuts at runs of them."""
    out = data.translate(_SEPARATORS_TO_SPACE).split()
    if not data or data[0] not in _WORD_BYTES:
        out.insert(0, b"")
    if data and data[-1] not in _WORD_BYTES:
        out.append(b"")
    return out


@dataclass(frozen=True)
class DedupConfig:
    """``data.dedup`` in the config."""

    exact: bool = True
    near: bool = True
    threshold: float = 0.85  # estimated Jaccard similarity of 5-gram shingles
    num_perm: int = 64
    shingle: int = 5


def normalise(text: str) -> str:
    return " ".join(_COMMENT.sub("", text).split())


def content_hash(text: str) -> bytes:
    return hashlib.blake2b(normalise(text).encode(), digest_size=16).digest()


_CHUNK = 4096  # shingles hashed at once: keeps the (shingles x num_perm) block in cache


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)  # fixed: signatures must agree across processes and runs
    odd = rng.integers(1, 1 << 63, num_perm, dtype=np.uint64) | np.uint64(1)
    return odd, rng.integers(0, 1 << 63, num_perm, dtype=np.uint64)


def signature(text: str, cfg: DedupConfig) -> np.ndarray | None:
    """MinHash values of the file's word shingles (None for files too short to shingle).

    Computed with numpy rather than ``MinHash.update_batch`` (which hashes every shingle with
    SHA-1 in Python, the slowest step of preparation): words are hashed with CRC-32, shingles are
    combined in vectorised 64-bit arithmetic, and the ``num_perm`` hash functions are
    multiply-shift hashes ``(a*x + b) mod 2^64 >> 32`` (``a`` odd), a universal family that needs
    no division, applied as broadcasts over blocks of distinct shingles. The shift is monotone, so
    it is applied to the minima only. The values feed datasketch's ``MinHashLSH`` unchanged, which
    only bands them.
    """
    tokens = words(text.encode("utf-8", "surrogateescape"))
    if len(tokens) < cfg.shingle:
        return None
    ids = np.fromiter(map(zlib.crc32, tokens), dtype=np.uint64, count=len(tokens))
    n = len(ids) - cfg.shingle + 1
    acc = np.zeros(n, dtype=np.uint64)
    a, b = _permutations(cfg.num_perm)
    out = np.full(cfg.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(cfg.shingle):
            acc = (acc * np.uint64(0x100000001B3)) ^ ids[j : j + n]
        # Distinct shingles by sorting 32-bit values (np.unique's hash table was 3x slower here).
        x = np.sort(((acc ^ (acc >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        x = x[np.r_[True, x[1:] != x[:-1]]].astype(np.uint64)
        block = np.empty((min(len(x), _CHUNK), cfg.num_perm), dtype=np.uint64)
        for k in range(0, len(x), _CHUNK):
            part = block[: len(x[k : k + _CHUNK])]
            np.multiply(x[k : k + _CHUNK, None], a[None, :], out=part)
            part += b[None, :]
            np.minimum(out, part.min(axis=0), out=out)
        out >>= np.uint64(32)
    return out


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """The (bands, rows) ``datasketch.MinHashLSH`` chooses for ``threshold`` by default: the least
    sum of the false positive and false negative probability masses (its ``_optimal_param``,
    equal weights). The masses are integrals of polynomials of degree at most ``num_perm`` in the
    similarity, so Gauss-Legendre quadrature with ``num_perm // 2 + 1`` nodes is exact; datasketch
    integrates them with scipy, whose import alone is a tenth of preparing the Elixir checkout."""
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def integral(f, lo: float, hi: float) -> np.ndarray:
        s = (hi - lo) / 2 * x[:, None] + (hi + lo) / 2
        return (hi - lo) / 2 * (w[:, None] * f(s)).sum(axis=0)

    best = (np.inf, 0, 0)
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1)
        error = (integral(lambda s: 1 - (1 - s**r) ** b, 0.0, threshold) + integral(lambda s: (1 - s**r) ** b, threshold, 1.0)) / 2
        k = int(np.argmin(error))
        if error[k] < best[0]:  # the first of equals, in datasketch's order
            best = (error[k], b, int(r[k]))
    return best[1], best[2]


def _datasketch() -> types.ModuleType:
    """``datasketch``, imported without ``scipy.integrate``: its LSH modules import it at the top,
    only to choose band parameters, which :class:`Deduplicator` gives (:func:`lsh_params`). A
    stand-in is in place while datasketch imports; a call to its ``quad`` imports the real one."""
    if "datasketch" in sys.modules or "scipy.integrate" in sys.modules:
        import datasketch

        return datasketch
    stand_in = types.ModuleType("scipy.integrate")

    def quad(*args, **kwargs):
        from scipy import integrate

        return integrate.quad(*args, **kwargs)

    stand_in.quad = quad
    sys.modules["scipy.integrate"] = stand_in
    try:
        import datasketch
    finally:
        if sys.modules.get("scipy.integrate") is stand_in:
            del sys.modules["scipy.integrate"]
    return datasketch


class Deduplicator:
    """Decides, file by file in corpus order, whether a file is new, an exact or a near duplicate."""

    def __init__(self, cfg: DedupConfig):
        self.cfg = cfg
        self.seen: set[bytes] = set()
        self.lsh = None
        if cfg.near:
            ds = _datasketch()
            # LeanMinHash: values only; a MinHash would draw its hash permutations for every file.
            self._minhash = ds.LeanMinHash
            self.lsh = ds.MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, params=lsh_params(cfg.threshold, cfg.num_perm))
        self._n = 0

    def check(self, digest: bytes, sig: np.ndarray | None) -> str | None:
        """``None`` to keep the file, else the reason it is dropped."""
        if self.cfg.exact:
            if digest in self.seen:
                return "duplicate_exact"
            self.seen.add(digest)
        if self.lsh is not None and sig is not None:
            # datasketch asks which scheme given values came from, only to refuse comparing across
            # schemes; ours are 32-bit like affine32's and every signature here comes from signature().
            m = self._minhash(seed=1, hashvalues=sig, scheme="affine32")
            if self.lsh.query(m):
                return "duplicate_near"
            self.lsh.insert(str(self._n), m, check_duplication=False)
            self._n += 1
        return None
