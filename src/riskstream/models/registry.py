"""Model lifecycle on MLflow: log, register, alias (champion / challenger), load, watch.

Embedded default: a SQLite tracking store and artifact directory under ``RISKSTREAM_HOME``;
``MLFLOW_TRACKING_URI`` points at a server instead. Each ``riskstream train`` logs a run
(parameters, feature spec, calibration, time-ordered validation metrics, the bundle file) and
registers a version of ``riskstream-detector`` with the alias ``challenger``;
``riskstream promote`` moves ``champion``. Servers load ``@champion`` and a
:class:`ModelWatcher` picks up alias moves between batches.

MLflow is imported lazily: a process that serves a model from a file never loads it. A
registry that cannot be read raises :class:`~riskstream.errors.RegistryUnavailable`; "no such
model or alias yet" is an answer (``None``), not an outage.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskstream.errors import RegistryUnavailable
from riskstream.models.bundle import ModelBundle

log = logging.getLogger("riskstream.registry")

MODEL_NAME = "riskstream-detector"
EXPERIMENT = "riskstream"
CHAMPION, CHALLENGER = "champion", "challenger"
#: MLflow's answers for "no such registered model / alias / version (yet)".
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) in _NOT_FOUND


def parse_model_uri(uri: str) -> tuple[str, str] | None:
    """``models:/name@alias`` -> (name, alias); a file path -> None.

    >>> parse_model_uri("models:/riskstream-detector@champion")
    ('riskstream-detector', 'champion')
    >>> parse_model_uri("/tmp/model.npz") is None
    True
    """
    if not uri.startswith("models:/"):
        return None
    name, sep, alias = uri.removeprefix("models:/").partition("@")
    if not sep or not name or not alias:
        raise ValueError(f"model URI must look like models:/NAME@ALIAS, got {uri!r}")
    return name, alias


@dataclass(frozen=True)
class Resolved:
    version: str  # registry version number
    bundle: ModelBundle


class Registry:
    def __init__(self, home: Path, tracking_uri: str | None = None, name: str = MODEL_NAME):
        self.home = Path(home).resolve()
        self.tracking_uri = (
            tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{self.home / 'mlflow.db'}"
        )
        self.name = name
        self._client: Any = None

    # -- plumbing ----------------------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self.home.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self) -> str:
        client = self.client()
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if self.tracking_uri.startswith("sqlite:"):
            # Keep artifacts beside the store, not in whatever directory we were started from.
            location = (self.home / "mlartifacts").as_uri()
        return str(client.create_experiment(EXPERIMENT, artifact_location=location))

    # -- lifecycle ---------------------------------------------------------------------------
    def register(
        self,
        bundle_path: Path,
        bundle: ModelBundle,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        alias: str = CHALLENGER,
    ) -> str:
        """Log a training run with the bundle and register it as a new version under ``alias``."""

        client = self.client()
        # Client calls only (no fluent mlflow.start_run): the fluent API keeps a process-wide
        # tracking URI and active run, which would mix up two registries in one process.
        run = client.create_run(self._experiment_id(), run_name=bundle.version)
        run_id = run.info.run_id
        flat = {
            "model_version": bundle.version,
            "detectors": ",".join(f"{m.name}:{m.weight:g}" for m in bundle.members),
            "model_features": ",".join(bundle.model_features),
            **{f"feature.{k}": v for k, v in bundle.spec.params.to_dict().items()},
            **{k: v for k, v in (params or {}).items() if v is not None},
        }
        for k, v in flat.items():
            client.log_param(run_id, k, str(v)[:500])
        for k, v in (metrics or {}).items():
            if v is not None:
                client.log_metric(run_id, k, float(v))
        client.log_dict(run_id, bundle.spec.to_dict(), "feature_spec.json")
        client.log_dict(
            run_id,
            {
                "levels": bundle.calibrator.levels.tolist(),
                "quantiles": bundle.calibrator.quantiles.tolist(),
            },
            "calibration.json",
        )
        client.log_artifact(run_id, str(bundle_path), artifact_path="bundle")
        client.set_terminated(run_id)
        source = f"{run.info.artifact_uri}/bundle/{Path(bundle_path).name}"
        try:
            client.create_registered_model(self.name)
        except Exception as exc:  # already registered
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(
                exc
            ):
                raise
        mv = client.create_model_version(
            self.name, source=source, run_id=run.info.run_id, description=bundle.version
        )
        client.set_registered_model_alias(self.name, alias, mv.version)
        log.info("registered %s version %s as @%s", self.name, mv.version, alias)
        return str(mv.version)

    def promote(self, version: str | None = None) -> str:
        """Point ``champion`` at ``version`` (default: the current challenger)."""
        client = self.client()
        if version is None:
            version = str(client.get_model_version_by_alias(self.name, CHALLENGER).version)
        client.get_model_version(self.name, version)  # raises for an unknown version
        client.set_registered_model_alias(self.name, CHAMPION, version)
        log.info("promoted %s version %s to @champion", self.name, version)
        return version

    def alias_version(self, alias: str) -> str | None:
        """The version holding ``alias``; None if there is no such alias (or model) yet."""
        try:
            return str(self.client().get_model_version_by_alias(self.name, alias).version)
        except Exception as exc:
            if _not_found(exc):
                return None
            raise RegistryUnavailable("registry", f"{type(exc).__name__}: {exc}") from exc

    def load(self, version: str) -> ModelBundle:
        import mlflow

        mv = self.client().get_model_version(self.name, version)
        local = mlflow.artifacts.download_artifacts(mv.source, tracking_uri=self.tracking_uri)
        bundle = ModelBundle.load(local)
        bundle.info = {**bundle.info, "registry_version": str(mv.version)}
        return bundle

    def resolve(self, alias: str) -> Resolved | None:
        version = self.alias_version(alias)
        return None if version is None else Resolved(version, self.load(version))

    def versions(self) -> list[dict[str, Any]]:
        client = self.client()
        aliases: dict[str, list[str]] = {}
        try:
            for alias, version in client.get_registered_model(self.name).aliases.items():
                aliases.setdefault(str(version), []).append(alias)
        except Exception as exc:
            if _not_found(exc):
                return []
            raise RegistryUnavailable("registry", f"{type(exc).__name__}: {exc}") from exc
        out = []
        for mv in client.search_model_versions(f"name='{self.name}'"):
            out.append(
                {
                    "version": str(mv.version),
                    "model_version": mv.description,
                    "aliases": sorted(aliases.get(str(mv.version), [])),
                    "created": mv.creation_timestamp,
                    "run_id": mv.run_id,
                }
            )
        return sorted(out, key=lambda r: int(r["version"]))


def load_model(ref: str, home: Path) -> tuple[ModelBundle, str]:
    """A bundle from a file path, ``models:/NAME@ALIAS``, an alias (``champion``) or a
    registry version number. Returns (bundle, label for reports)."""
    target = parse_model_uri(ref)
    if target is None and Path(ref).exists():
        return ModelBundle.load(ref), Path(ref).name
    registry = Registry(home, name=target[0] if target else MODEL_NAME)
    key = target[1] if target else ref
    version = key if key.isdigit() else registry.alias_version(key)
    if version is None:
        raise ValueError(f"no model file or registry alias/version {ref!r}")
    bundle = registry.load(version)
    return bundle, f"{key} (v{version}, {bundle.version})"


class ModelWatcher:
    """Polls the registry; returns new champion / challenger bundles when aliases move.

    Call :meth:`check` between batches (the pipeline does): a swap never splits a batch.
    """

    def __init__(self, registry: Registry, every_s: float = 10.0) -> None:
        self.registry = registry
        self.every_s = every_s
        self._next = 0.0
        self.champion: str | None = None
        self.challenger: str | None = None

    def check(self, force: bool = False) -> tuple[Resolved | None, Resolved | None, bool]:
        """(new champion or None, new challenger or None, challenger_removed)."""
        now = time.monotonic()
        if not force and now < self._next:
            return None, None, False
        self._next = now + self.every_s
        champ_v = self.registry.alias_version(CHAMPION)
        chall_v = self.registry.alias_version(CHALLENGER)
        new_champ = new_chall = None
        if champ_v is not None and champ_v != self.champion:
            new_champ = Resolved(champ_v, self.registry.load(champ_v))
            self.champion = champ_v
        # A challenger that is also champion is not shadowed against itself.
        effective = None if chall_v == champ_v else chall_v
        removed = effective is None and self.challenger is not None
        if effective is not None and effective != self.challenger:
            new_chall = Resolved(effective, self.registry.load(effective))
        self.challenger = effective
        return new_champ, new_chall, removed
