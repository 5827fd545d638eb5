"""Settings from the environment (prefix RISKGRAPH_), validated at start."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the graph lives and how the service runs.

    Safe defaults are for local use only: the embedded store in the working directory, the
    API on loopback. A Neo4j store needs its URI and password from the environment.
    """

    model_config = SettingsConfigDict(env_prefix="RISKGRAPH_", env_file=None, extra="ignore")

    mode: Literal["local", "production"] = "local"
    store: Literal["sqlite", "neo4j"] = "sqlite"
    db: Path = Path("riskgraph.db")
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr = SecretStr("")
    # Directories the ingest job may read: only below this root.
    data_root: Path = Path("data")

    @model_validator(mode="after")
    def _production_needs_real_credentials(self) -> Settings:
        production_neo4j = self.mode == "production" and self.store == "neo4j"
        if production_neo4j and not self.neo4j_password.get_secret_value():
            raise ValueError("RISKGRAPH_NEO4J_PASSWORD must be set in production mode")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
