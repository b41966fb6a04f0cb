"""hero-gym: Gymnasium environments, policies, trainers and a benchmark harness for multi-turn LLM agents."""

from hero_gym.registry import ENV_SPECS, make  # noqa: F401

__version__ = "0.1.0"

# Registers every env id (string entry points only: nothing heavy is imported here).
import hero_gym.envs  # noqa: E402,F401
