"""GGUF files without llama.cpp: the bounded header check and the facts that size a model.

    info = check_gguf(path)          # GGUFFormatError/ModelLoadError naming the file, or its facts
    facts = read_model_facts(path)   # layers, heads, context: what the memory estimate needs

(The third-party ``gguf`` package, used for its type tables, is imported absolutely; this
package is always ``llamarun.gguf``.)
"""

from .check import check_gguf
from .facts import ModelFacts, read_model_facts
from .info import ArraySummary, GGUFInfo, TensorInfo, format_count

__all__ = ["ArraySummary", "GGUFInfo", "ModelFacts", "TensorInfo", "check_gguf", "format_count", "read_model_facts"]
