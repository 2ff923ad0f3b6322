"""Cohort extraction: features + deep-ROI patches of every case, cached, parallel, resumable.

``extract_cohort(manifest, "features.csv")`` writes

* ``features.csv``: ``case_id`` + the 1702 radiomics columns, one row per extracted case, in
  manifest order;
* ``features.patches.npz``: each case's 160 x 160 float32 HU deep-ROI patch (key = case_id);
* ``features.failures.csv`` (only when some case failed): ``case_id,row,reason``;
* ``features.settings.json``: the ring thickness, parameter file (content and hash), mask rule
  and pyradiomics version used (:mod:`DeepRadScoreLib.features.settings`), copied into bundles;
* ``features.csv.cache/``: one ``<key>.json`` (features) + ``<key>.npy`` (patch) per case, where
  the key hashes the image and mask file contents, the parameter file, the ring thickness, the
  mask label / ROI name and the versions of this engine and pyradiomics. A rerun after an
  interruption only computes the cases without a cache entry; a changed file changes the key, so
  that case is computed again. An entry that cannot be used (zero bytes after a full disk, cut,
  edited) counts as missing: it is computed again and listed in ``ExtractionResult.broken_cache``
  (the CLI says so in one line). Entries the current manifest no longer uses are removed once a
  run completes.

Every output path is checked before any work (:func:`check_outputs`): a folder given as the CSV,
a folder that cannot be written or created is refused at once, and nothing is left behind.

Cases run in-process (``workers=1``), in local processes (``workers=N``) or on an existing Dask
cluster (``scheduler=ADDRESS``; the workers must see the same file paths). Dask gets the largest
cases first, so that no big case is left running alone at the end. Local processes are given
their next case when they finish one, in two directions: one takes the largest left, the others
the smallest, so that the largest cases (the largest CTs: their arrays dominate a worker's
memory) never run side by side, where their peaks would add up (~50 MiB on the 18 STS cases).
The ``TAIL_CASES_PER_PROCESS`` smallest cases per process are kept for the end, where every
process takes the largest left: the two directions meet on a medium case, which would otherwise
leave a process idle while the other finishes it (~1 s of 16 measured).
With local processes this process extracts nothing itself: it reads the manifest, hashes files,
keeps the cache and writes the table, and asks its first worker what it needs to know of the
backend (:class:`backends.BackendFacts`), so it never imports pyradiomics, SimpleITK or SciPy
(its memory went from ~115 to ~60 MiB PSS). A failing case (unreadable file, empty mask, ...) is
listed with its reason and the others go on; the run fails (``InputError``, CLI exit status 2)
only when no case could be extracted. With some failures the CLI exits with status 1 after
writing the table of the others, so scripts notice the missing rows. Local worker processes
never outlive this one, however it ends (:mod:`DeepRadScoreLib.processes`).
"""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from DeepRadScoreLib import __version__
from DeepRadScoreLib.errors import Cancelled, InputError
from DeepRadScoreLib.features.settings import ExtractionSettings, resolve_settings, settings_path, write_settings
from DeepRadScoreLib.filehash import update_with_file
from DeepRadScoreLib.outputs import atomic_file, check_output_dir, check_output_file
from DeepRadScoreLib.progress import CancelCheck, ProgressCallback, report
from DeepRadScoreLib.regions import PATCH_SIZE

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from DeepRadScoreLib.io.manifest import CaseEntry, Manifest

# pandas (and the manifest module, which needs it) are imported where used: the worker processes
# only run extract_case and need not carry them (~36 MiB each).

ONE_CASE_JOBS = 4
# The smallest cases kept for the end of a local-process run, per process (see the module doc).
TAIL_CASES_PER_PROCESS = 2
# How long to keep trying to reach a Dask scheduler before telling the user it is not there.
SCHEDULER_TIMEOUT = "20s"
# Bump when a change to the extraction changes its numbers, so that old cache entries are ignored.
CACHE_FORMAT = 1


@dataclass
class ExtractionResult:
    """What a cohort extraction produced and how (case ids per outcome)."""

    features_csv: Path
    patches_npz: Path
    failures_csv: Optional[Path]
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    broken_cache: list[str] = field(default_factory=list)  # cases whose cache entry was unusable

    @property
    def extracted(self) -> list[str]:
        return self.computed + self.cached


def output_paths(output_csv: str | Path) -> tuple[Path, Path, Path, Path]:
    """features CSV, its patches file, failures file and cache folder."""
    output_csv = Path(output_csv)
    stem = output_csv.name.rsplit(".", 1)[0] if "." in output_csv.name else output_csv.name
    return (output_csv, output_csv.with_name(f"{stem}.patches.npz"),
            output_csv.with_name(f"{stem}.failures.csv"), output_csv.with_name(output_csv.name + ".cache"))


def check_outputs(output_csv: str | Path, cohort: bool) -> None:
    """Refuse, before any work, an ``output_csv`` whose files could not be written: the table,
    its patches and settings files and, for a cohort, the failures file and the cache folder."""
    features_csv, patches_npz, failures_csv, cache = output_paths(output_csv)
    for file in (features_csv, patches_npz, settings_path(features_csv)) + ((failures_csv,) if cohort else ()):
        check_output_file(file)
    if cohort:
        check_output_dir(cache)


def backend_params(settings: ExtractionSettings):
    """The radiomics parameters as the backends take them (every call into a backend goes
    through this module, with this): parsed once, keyed by their SHA-256."""
    return settings.parameters()


def case_features(image, mask, ring, settings: ExtractionSettings, jobs: int = 1,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelCheck] = None) -> dict[str, float]:
    """The tumour's and the ring's 1702 features with the settings' parameters and backend."""
    from DeepRadScoreLib.features.backends import extract_case_features

    return extract_case_features(image, mask, ring, backend_params(settings), backend=settings.backend,
                                 jobs=jobs, progress=progress, cancel=cancel)


def extract_case(image_path, mask_path, settings: Optional[ExtractionSettings] = None, label=None,
                 roi_name=None, jobs: int = 1, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelCheck] = None) -> tuple[dict[str, float], np.ndarray]:
    """One case from files: its 1702 features and its deep-ROI patch (HU), extracted with
    ``settings`` (ring thickness, parameters, backend; ``None``: the defaults)."""
    from DeepRadScoreLib.io.images import load_case
    from DeepRadScoreLib.regions import deep_roi_patch, peritumoral_ring

    settings = settings or resolve_settings()
    case = load_case(image_path, mask_path, label=label, roi_name=roi_name)
    ring = peritumoral_ring(case.mask, settings.thickness_mm)
    try:
        features = case_features(case.image, case.mask, ring, settings, jobs=jobs, progress=progress,
                                 cancel=cancel)
    except InputError as err:  # "tumour mask: too small ...": say which file holds it
        raise InputError(f"{mask_path}: {err}") from None
    return features, deep_roi_patch(case.image, case.mask).hu.astype(np.float32)


def _extract_for_cohort(image, mask, label, roi_name, settings, jobs=1, cancel=None):
    """One cohort case, here, in a process or on a Dask worker: (features, patch, None) or
    (None, None, reason). Any error of one case is that case's failure, listed with its reason;
    the rest of the cohort goes on (a traceback would not help the user fix the file)."""
    try:
        features, patch = extract_case(image, mask, settings, label, roi_name, jobs=jobs, cancel=cancel)
    except Cancelled:
        raise
    except InputError as err:
        return None, None, str(err)
    except MemoryError:
        return None, None, "out of memory"
    except Exception as err:
        return None, None, f"{type(err).__name__}: {err}"
    return features, patch, None


def extract_cohort(manifest: Manifest | str | Path, output_csv: str | Path,
                   settings: Optional[ExtractionSettings] = None, workers: int = 1,
                   scheduler: Optional[str] = None, progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelCheck] = None) -> ExtractionResult:
    """Extract every case of ``manifest`` into ``output_csv`` (see the module doc for the files)
    with ``settings`` (:func:`~DeepRadScoreLib.features.settings.resolve_settings`; ``None``:
    the defaults); its backend is resolved once here for every worker."""
    from DeepRadScoreLib.io.manifest import Manifest, read_manifest
    from DeepRadScoreLib.features.backends import adopt, backend_facts

    started = time.perf_counter()
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    settings = settings or resolve_settings()
    check_outputs(output_csv, cohort=True)
    cases = manifest.cases()
    # Local processes start first: the first one also finds the backend's facts, so that this
    # process imports none of the extraction's libraries (backends.BackendFacts says why).
    local = scheduler is None and workers > 1 and len(cases) > 1
    pool = _LocalPool(min(workers, len(cases)), settings.backend) if local else None
    try:
        if pool is not None:
            report(progress, 0.0, "starting the worker processes", cancel)
            facts = pool.facts(settings)
            adopt(facts)
        else:
            facts = backend_facts(backend_params(settings), settings.backend)
        # Every worker runs the backend resolved here, and the table records it.
        settings = settings.ran_with(facts.backend, facts.pyradiomics_version)
        result = _extract_cases(manifest, cases, output_csv, pool, facts, workers, scheduler, settings,
                                progress, cancel)
    finally:
        if pool is not None:
            pool.close()
    result.seconds = time.perf_counter() - started
    return result


def _extract_cases(manifest: Manifest, cases: list[CaseEntry], output_csv, pool, facts, workers: int,
                   scheduler, settings: ExtractionSettings, progress, cancel) -> ExtractionResult:
    """:func:`extract_cohort` once the backend is known: cache, extraction, outputs."""
    import pandas as pd

    names = list(facts.names)
    features_csv, patches_npz, failures_csv, cache = output_paths(output_csv)
    result = ExtractionResult(features_csv, patches_npz, None)

    report(progress, 0.0, "hashing the input files", cancel)
    fixed = _fixed_key_part(settings)
    keys = {c.case_id: _case_key(c, fixed) for c in cases}
    # Only the ids of finished cases stay in this process; their numbers are in the cache, read
    # back a few at a time when the table is written, so its memory does not grow with the cohort.
    done: set[str] = set()
    for c in cases:
        hit = _read_cache(cache, keys[c.case_id], names)
        if hit is _BROKEN:
            result.broken_cache.append(c.case_id)
        elif hit is not None:
            done.add(c.case_id)
            result.cached.append(c.case_id)
        del hit
    if result.broken_cache:
        logger.info("%d unusable cache entries in %s, computed again", len(result.broken_cache), cache)
    pending = sorted((c for c in cases if c.case_id not in done), key=_case_size, reverse=True)
    total = len(cases)

    def finished(case: CaseEntry, features, patch, reason) -> None:
        if reason is None:
            _write_cache(cache, keys[case.case_id], case, features, patch)
            done.add(case.case_id)
            result.computed.append(case.case_id)
        else:
            result.failed[case.case_id] = reason
        count = len(done) + len(result.failed)
        report(progress, count / total, f"{count}/{total} cases ({case.case_id}"
               f"{'' if reason is None else ' failed'})", cancel)

    report(progress, len(done) / total, f"{len(done)}/{total} cases from the cache", cancel)
    if pending:
        if scheduler is not None:
            _run_dask(scheduler, pending, settings, finished)
        elif pool is not None and len(pending) > 1:
            pool.run(pending, settings, finished)
        else:
            if pool is not None:
                pool.close()  # one case left: it runs here, on every worker (its own pool)
            for case in pending:
                # A lone case may use every worker inside it (tumour and ring side by side).
                finished(case, *_extract_for_cohort(case.image, case.mask, case.label, case.roi_name,
                                                    settings, workers, cancel))

    failures = [(c.case_id, c.row, result.failed[c.case_id]) for c in cases if c.case_id in result.failed]
    if pool is not None:
        pool.close()  # before the table is written: the workers' memory is not needed any more
    if failures:
        with atomic_file(failures_csv) as tmp:
            pd.DataFrame(failures, columns=["case_id", "row", "reason"]).to_csv(tmp, index=False)
        result.failures_csv = failures_csv
    elif failures_csv.exists():
        failures_csv.unlink()  # from an earlier run whose failed cases now succeeded
    if not done:
        raise InputError(f"{manifest.path}: all {total} cases failed (reasons in {failures_csv}); "
                         f"first: {failures[0][0]}: {failures[0][2]}")

    extracted = [c.case_id for c in cases if c.case_id in done]
    # The settings sidecar is renamed into place before the table, so a table never stands
    # beside the settings of another run.
    with atomic_file(features_csv) as tmp_csv, atomic_file(patches_npz) as tmp_npz, \
            atomic_file(settings_path(features_csv)) as tmp_settings:
        _write_table(tmp_csv, tmp_npz, cache, extracted, keys, names)
        write_settings(tmp_settings, settings)
    _prune_cache(cache, set(keys.values()))
    return result


def _extract_in_worker(*args, **kwargs):
    """:func:`_extract_for_cohort` in a pool process, which then returns the case's freed memory to
    the system (the other processes may need it now)."""
    from DeepRadScoreLib.processes import release_memory

    try:
        return _extract_for_cohort(*args, **kwargs)
    finally:
        release_memory()


class _LocalPool:
    """The cohort's local worker processes (a fork server's, :mod:`features.workers`).

    Started before the cache is read: its first process also answers :meth:`facts`. :meth:`run`
    gives each process its next case when it finishes one (the order: see the module doc).
    """

    def __init__(self, workers: int, backend: Optional[str]):
        from DeepRadScoreLib.features.workers import preload_for, process_context
        from DeepRadScoreLib.processes import guard_worker

        # guard_worker: the workers end when this process ends, however it ends (SIGKILL included).
        self.workers = workers
        self.executor = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=process_context(preload_for(backend)), initializer=guard_worker,
            initargs=(os.getpid(),))

    def facts(self, settings: ExtractionSettings):
        """:func:`backends.backend_facts` in a worker (its InputError is raised here)."""
        return self.executor.submit(_facts_in_worker, settings).result()

    def run(self, pending: list[CaseEntry], settings: ExtractionSettings, finished) -> None:
        queue = collections.deque(pending)  # largest first
        running: dict = {}  # future -> (case, lane)
        reserve = TAIL_CASES_PER_PROCESS * self.workers

        def submit(lane: int) -> None:
            # Lane 0 takes the largest case left, the others the smallest but the `reserve`
            # smallest, which are kept to even out the end (see the module doc). One case per
            # process at a time: a queued case would go to whichever process frees first.
            if lane == 0 or len(queue) <= reserve:
                case = queue.popleft()
            else:
                case = queue[-1 - reserve]
                del queue[-1 - reserve]
            running[self.executor.submit(_extract_in_worker, str(case.image), str(case.mask), case.label,
                                         case.roi_name, settings)] = (case, lane)

        try:
            for lane in range(min(self.workers, len(queue))):
                submit(lane)
            while running:
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    case, lane = running.pop(future)
                    finished(case, *_outcome(future))
                    if queue:
                        submit(lane)
        except BaseException:
            # Ctrl-C, SIGTERM, cancel: stop the running cases now instead of waiting for them (the
            # finished ones are in the cache); shutdown would otherwise wait for every running case.
            for process in list((getattr(self.executor, "_processes", None) or {}).values()):
                process.terminate()
            raise

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _facts_in_worker(settings: ExtractionSettings):
    from DeepRadScoreLib.features.backends import backend_facts

    return backend_facts(backend_params(settings), settings.backend)


def _run_dask(address: str, pending: list[CaseEntry], settings: ExtractionSettings, finished) -> None:
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise InputError(f"--scheduler {address}: cannot connect to a Dask scheduler ({err})") from None
    try:
        futures = {client.submit(_extract_for_cohort, str(c.image), str(c.mask), c.label, c.roi_name,
                                 settings, pure=False,
                                 key=f"deepradscore-{c.case_id}-{i}"): c
                   for i, c in enumerate(pending)}
        try:
            for future in as_completed(futures):
                finished(futures[future], *_outcome(future))
        finally:
            client.cancel(list(futures))
    finally:
        client.close()


def _outcome(future):
    """A finished future's (features, patch, reason); a crash is a failed case, not a lost run."""
    try:
        return future.result()
    except (Cancelled, KeyboardInterrupt):
        raise
    except Exception as err:  # a worker crash or an unexpected error: listed with the case
        return None, None, f"{type(err).__name__}: {err}"


# --- cache ---------------------------------------------------------------------------------

def _fixed_key_part(settings: ExtractionSettings) -> str:
    from DeepRadScoreLib.features.backends import describe

    digest = hashlib.sha256()
    # The backend (and pyradiomics' version) is part of the key: both backends give the same
    # numbers, but a cached value must never hide a difference between them.
    digest.update(f"format {CACHE_FORMAT} engine {__version__} {describe(settings.backend)} "
                  f"ring {float(settings.thickness_mm)!r}\n".encode())
    digest.update(settings.params_yaml.encode())
    return digest.hexdigest()


def _case_key(case: CaseEntry, fixed: str) -> str:
    digest = hashlib.sha256(fixed.encode())
    digest.update(f"label {case.label} roi {case.roi_name}\n".encode())
    for path in (case.image, case.mask):
        _hash_path(digest, Path(path))
    return digest.hexdigest()[:32]


def _hash_path(digest, path: Path) -> None:
    """Content hash of a file, or of every file of a folder (a DICOM series) by relative name."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        try:
            update_with_file(digest, file)
        except OSError:
            digest.update(b"unreadable")  # the case will fail with the reader's own message


def _case_size(case: CaseEntry) -> int:
    """Bytes of image + mask: a cheap proxy for the work a case takes."""
    size = 0
    for path in (Path(case.image), Path(case.mask)):
        try:
            size += sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
        except OSError:
            pass
    return size


_BROKEN = "broken"


def _read_cache(cache: Path, key: str, names: list[str]):
    """``(features, patch)``, None when there is no entry, or ``_BROKEN`` for one that is there but
    cannot be used (zero bytes after a full disk, cut, edited, another format): the caller computes
    it again and says so, instead of failing every later run until the cache is deleted by hand."""
    entry, patch_file = cache / f"{key}.json", cache / f"{key}.npy"
    if not entry.is_file():
        return None  # the JSON is written last: without it the entry was never finished
    try:
        stored = json.loads(entry.read_text())
        features = {n: float(stored["features"][n]) for n in names}
        patch = np.load(patch_file, allow_pickle=False)
    except Exception:  # noqa: BLE001 - EOFError, UnpicklingError, ValueError...: all mean "unusable"
        return _BROKEN
    if patch.shape != (PATCH_SIZE, PATCH_SIZE) or patch.dtype != np.float32:
        return _BROKEN
    return features, patch


# Cases read back from the cache at a time while the table is written.
TABLE_CHUNK = 32


def _write_table(csv_path: Path, npz_path: Path, cache: Path, case_ids: list[str], keys: dict[str, str],
                 names: list[str]) -> None:
    """The feature table and its patches file from the cache entries of ``case_ids``, in that
    order, :data:`TABLE_CHUNK` cases at a time: the same bytes of CSV as one ``to_csv`` of the
    whole table (every row is formatted on its own) and the same archive ``np.savez`` writes."""
    import zipfile

    import pandas as pd

    with open(csv_path, "w", newline="", encoding="utf-8") as table, \
            zipfile.ZipFile(npz_path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for start in range(0, len(case_ids), TABLE_CHUNK):
            chunk, rows = case_ids[start:start + TABLE_CHUNK], []
            for case_id in chunk:
                hit = _read_cache(cache, keys[case_id], names)
                if not isinstance(hit, tuple):
                    raise InputError(f"{cache}: the cache entry of {case_id} was removed or changed "
                                     f"while the table was written; run the extraction again")
                rows.append([hit[0][n] for n in names])
                with archive.open(f"{case_id}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, hit[1], allow_pickle=False)
            frame = pd.DataFrame(rows, columns=names)
            frame.insert(0, "case_id", chunk)
            frame.to_csv(table, index=False, header=start == 0)


def _write_cache(cache: Path, key: str, case: CaseEntry, features: dict, patch: np.ndarray) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_file(cache / f"{key}.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, patch)
    # The JSON is written last: its presence marks a complete entry.
    with atomic_file(cache / f"{key}.json") as tmp:
        tmp.write_text(json.dumps({"case_id": case.case_id, "image": str(case.image), "mask": str(case.mask),
                                   "features": features}))


def _prune_cache(cache: Path, keep: set[str]) -> None:
    if not cache.is_dir():
        return
    for entry in cache.iterdir():
        if entry.suffix in (".json", ".npy") and entry.stem not in keep:
            entry.unlink()


def extract_case_table(image_path, mask_path, output_csv: str | Path,
                       settings: Optional[ExtractionSettings] = None, label: Optional[int] = None,
                       roi_name: Optional[str] = None, jobs: int = 1,
                       progress: Optional[ProgressCallback] = None,
                       cancel: Optional[CancelCheck] = None) -> tuple[Path, Path, str, int]:
    """One case into a one-row feature table and its patches file (the cohort's format).

    :param image_path: CT file or DICOM folder; ``mask_path``: its tumour mask (see ``io.images``).
    :param output_csv: the features CSV; the patches go beside it (:func:`output_paths`).
    :param settings: ring thickness, parameters and backend (``None``: the defaults).
    :param jobs: processes for the tumour and ring work of this one case.
    :returns: ``(features_csv, patches_npz, case_id, number of features)``.
    """
    import pandas as pd

    from DeepRadScoreLib.features.backends import backend_facts

    if jobs < 1:
        raise InputError(f"--workers must be at least 1, got {jobs}")
    settings = settings or resolve_settings()
    check_outputs(output_csv, cohort=False)
    facts = backend_facts(backend_params(settings), settings.backend)
    settings = settings.ran_with(facts.backend, facts.pyradiomics_version)
    features_csv, patches_npz, _, _ = output_paths(output_csv)
    name = Path(image_path).name
    case_id = name.split(".")[0] if not Path(image_path).is_dir() else name
    features, patch = extract_case(image_path, mask_path, settings, label, roi_name, jobs=jobs,
                                   progress=progress, cancel=cancel)
    names = list(facts.names)
    table = pd.DataFrame([[features[n] for n in names]], columns=names)
    table.insert(0, "case_id", [case_id])
    with atomic_file(features_csv) as tmp_csv, atomic_file(patches_npz) as tmp_npz, \
            atomic_file(settings_path(features_csv)) as tmp_settings:
        table.to_csv(tmp_csv, index=False)
        with open(tmp_npz, "wb") as handle:
            np.savez(handle, **{case_id: patch})
        write_settings(tmp_settings, settings)
    return features_csv, patches_npz, case_id, len(names)


def read_feature_table(features_csv, case_ids: list[str]) -> tuple["pd.DataFrame", np.ndarray]:
    """The rows of ``case_ids`` (in that order) from a feature table and its patches file.

    :returns: the numeric features (index ``case_id``) and the patches ``[n, 160, 160]`` float32.
    """
    import pandas as pd

    features_csv, patches_file = output_paths(features_csv)[:2]
    for file in (features_csv, patches_file):
        if not file.is_file():
            raise InputError(f"{file}: file not found")
    try:
        table = pd.read_csv(features_csv, dtype={"case_id": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{features_csv}: cannot read as CSV ({err})") from None
    if "case_id" not in table.columns:
        raise InputError(f"{features_csv}: no case_id column")
    table = table.set_index("case_id")
    missing = [c for c in case_ids if c not in table.index]
    if missing:
        raise InputError(f"{features_csv}: no features for case {missing[0]}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    features = table.loc[case_ids]
    numeric = features.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & features.notna()
    if bad.any().any():
        row, column = bad.stack()[bad.stack()].index[0]
        raise InputError(f"{features_csv}: case {row}: column {column} is not a number")
    try:
        with np.load(patches_file, allow_pickle=False) as npz:
            absent = [c for c in case_ids if c not in npz.files]
            if absent:
                raise InputError(f"{patches_file}: no deep-ROI patch for case {absent[0]}")
            patches = np.stack([npz[c] for c in case_ids]).astype(np.float32)
    except (ValueError, OSError) as err:
        raise InputError(f"{patches_file}: cannot read the patches ({err})") from None
    if patches.shape[1:] != (160, 160):
        raise InputError(f"{patches_file}: patches are {patches.shape[1:]}, expected (160, 160)")
    return numeric, patches
