from core import models


def test_tiny_models_load_through_registry(tiny_bert_dir, tiny_llama_dir):
    tok = models.load_tokenizer(str(tiny_llama_dir))
    lm = models.load_causal_lm(str(tiny_llama_dir))
    assert lm.config.num_hidden_layers == 2 and tok.chat_template
    enc = models.load_encoder(str(tiny_bert_dir))
    assert enc.config.hidden_size == 32
    clf = models.load_for_classification(str(tiny_bert_dir), ["a", "b", "c"])
    assert clf.config.num_labels == 3
