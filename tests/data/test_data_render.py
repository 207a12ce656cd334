"""render() and prompt_text(): plain-text joining rules and chat templates, with an offline tokenizer."""

import pytest

from rewardlab.data.render import prompt_text, render

TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    """A WordLevel tokenizer built in memory, wrapped as a transformers fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "hi", "hello", "<", ">", "/", "user", "assistant"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.chat_template = TEMPLATE
    return fast


@pytest.mark.parametrize("prompt, response, text", [
    ("Q:", " A", "Q: A"),                    # response starts with whitespace
    ("Q: ", "A", "Q: A"),                    # prompt ends with whitespace
    ("Question?", "Answer.", "Question?\nAnswer."),  # neither: a newline between
    ("", "Answer.", "Answer."),              # no prompt
    ("\n\nHuman: hi\n\nAssistant:", " hello", "\n\nHuman: hi\n\nAssistant: hello"),  # HH-RLHF split rejoined
])
def test_plain_text_joining(prompt, response, text):
    assert render(prompt, response) == text
    assert render(prompt, response).startswith(prompt_text(prompt))


def test_chat_messages_use_the_template(tokenizer):
    """Prompt messages + the response as an assistant message, through the template above."""
    prompt = [{"role": "user", "content": "hi"}]
    assert render(prompt, "hello", tokenizer) == "<user>hi</user><assistant>hello</assistant>"
    assert render(prompt, [{"role": "assistant", "content": "hello"}], tokenizer) == \
        "<user>hi</user><assistant>hello</assistant>"
    assert prompt_text(prompt, tokenizer) == "<user>hi</user><assistant>"
    assert render(prompt, "hello", tokenizer).startswith(prompt_text(prompt, tokenizer))
    assert tokenizer(render(prompt, "hello", tokenizer))["input_ids"][:3] == [4, 7, 5]  # "<", "user", ">"


def test_chat_without_template_is_a_clear_error(tokenizer):
    prompt = [{"role": "user", "content": "hi"}]
    with pytest.raises(ValueError, match="need a tokenizer with a chat template"):
        render(prompt, "hello")
    template, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        with pytest.raises(ValueError, match="has no chat template"):
            render(prompt, "hello", tokenizer)
        with pytest.raises(ValueError, match="has no chat template"):
            prompt_text(prompt, tokenizer)
        assert render("Q?", "A.", tokenizer) == "Q?\nA."  # plain text needs no template
    finally:
        tokenizer.chat_template = template
    with pytest.raises(ValueError, match="give the prompt as chat messages"):
        render("hi", [{"role": "assistant", "content": "hello"}], tokenizer)
