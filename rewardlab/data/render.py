"""Turn (prompt, response) into the one string a reward model reads.

* Plain strings are joined as ``prompt + response`` when either side already has whitespace at the
  boundary (HH-RLHF prompts end with "Assistant:" and responses start with a space; a common-prefix split
  keeps the space in the prompt), else as ``prompt + "\\n" + response``. An empty prompt gives the response.
* Chat messages are rendered with the tokenizer's own chat template:
  ``tokenizer.apply_chat_template(prompt_messages + response_messages, tokenize=False)``, where a string
  response becomes one ``{"role": "assistant", "content": response}`` message.

Invariant the batching code relies on: ``render(p, r, tok).startswith(prompt_text(p, tok))`` — for chat,
as long as the template renders a conversation's prefix the same way the generation prompt does, which
holds for ordinary templates. A plain-string prompt beside a chat-message response is an error (the
loader turns such prompts into a user message already), so the invariant is never broken by mixing.
"""

from __future__ import annotations

from rewardlab.types import Text


def join_text(prompt: str, response: str) -> str:
    """prompt + response if either has whitespace at the boundary (or either is empty),
    else prompt + "\\n" + response."""
    if not prompt or not response or prompt[-1].isspace() or response[0].isspace():
        return prompt + response
    return prompt + "\n" + response


def _chat_tokenizer(tokenizer):
    if tokenizer is None:
        raise ValueError("chat messages need a tokenizer with a chat template to render them (got tokenizer=None)")
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ValueError(f"tokenizer {name!r} has no chat template, so chat messages cannot be rendered; set "
                         f"tokenizer.chat_template to a Jinja template or give the data as plain text")
    return tokenizer


def _as_messages(text: Text, what: str) -> list:
    if isinstance(text, str):
        return [{"role": "assistant", "content": text}]
    if isinstance(text, (list, tuple)):
        return list(text)
    raise TypeError(f"{what}: expected a string or a list of chat messages, got {type(text).__name__}")


def render(prompt: Text, response: Text, tokenizer=None) -> str:
    """The text of ``prompt`` followed by ``response`` (see the module docstring for the rules)."""
    if isinstance(prompt, str) and isinstance(response, str):
        return join_text(prompt, response)
    if isinstance(prompt, str):
        raise ValueError("a plain-string prompt with a chat-message response: give the prompt as chat messages "
                         "too, e.g. [{'role': 'user', 'content': prompt}]")
    messages = _as_messages(prompt, "prompt") + _as_messages(response, "response")
    return _chat_tokenizer(tokenizer).apply_chat_template(messages, tokenize=False)


def prompt_text(prompt: Text, tokenizer=None) -> str:
    """The text of the prompt alone: the string itself, or for chat the template's rendering with
    ``add_generation_prompt=True`` (so it ends where the assistant's response starts)."""
    if isinstance(prompt, str):
        return prompt
    return _chat_tokenizer(tokenizer).apply_chat_template(_as_messages(prompt, "prompt"), tokenize=False,
                                                          add_generation_prompt=True)
