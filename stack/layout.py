"""Where the local stack keeps its jars, configs, data, logs and PID files (all under Settings.stack_dir)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.settings import PROJECT_ROOT, Settings

__all__ = ["StackLayout", "POM_PATH"]

POM_PATH = PROJECT_ROOT / "stack" / "pom.xml"


@dataclass(frozen=True)
class StackLayout:
    """Paths derived from one Settings; nothing is created until :meth:`create` is called."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> StackLayout:
        return cls(settings.stack_dir)

    @property
    def lib_dir(self) -> Path:
        """Every jar of stack/pom.xml: the classpath of the broker and of Connect."""
        return self.root / "lib"

    @property
    def lib_stamp(self) -> Path:
        """Holds the hash of the pom the jars in lib/ were fetched for."""
        return self.root / "lib.stamp"

    @property
    def plugins_dir(self) -> Path:
        """Kafka Connect's plugin.path; connectors.sink.install() puts the DynamoDB sink here."""
        return self.root / "plugins"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        """PID files of the processes `nudge stack up` started."""
        return self.root / "run"

    @property
    def kafka_data_dir(self) -> Path:
        return self.root / "kafka-data"

    @property
    def lock_file(self) -> Path:
        """Serialises concurrent `up`/`down` calls (several shells, pytest sessions)."""
        return self.root / "stack.lock"

    def log_file(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    def create(self) -> None:
        for path in (self.root, self.plugins_dir, self.config_dir, self.logs_dir, self.run_dir):
            path.mkdir(parents=True, exist_ok=True)
