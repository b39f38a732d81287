"""JSON Schema -> GBNF for containers: objects (required then optional properties) and arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._schema_base import RuleSet, count_keyword, fail, literal_value

__all__ = ["ContainerRules"]


class ContainerRules(RuleSet):
    """Rules for the types object (properties in order, required first) and array (items, tuples)."""

    def _object(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(props, Mapping):
            raise fail(f"{path}/properties", "must be an object mapping names to schemas")
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise fail(f"{path}/required", "must be a list of property names")
        extra = schema.get("additionalProperties")
        if not props and not required and extra in (None, True):
            return self.primitive("object")
        names = list(dict.fromkeys([*[r for r in required], *props]))
        n_required = len(set(required))
        minimum = count_keyword(schema, "minProperties", path, 0) or 0
        maximum = count_keyword(schema, "maxProperties", path, None)
        if minimum > n_required or (maximum is not None and (maximum < len(names) or extra not in (None, False))):
            raise fail(path, "minProperties/maxProperties are only supported when implied by the properties")
        self.primitive("space")
        kvs = {}
        for key in names:
            value = self._visit(props.get(key, True), f"{hint}-{key}", f"{path}/properties/{key}")
            kvs[key] = self.rule(f"{hint}-{key}-kv", f'{literal_value(str(key))} space ":" space {value}')
        extra_kv = None
        if extra not in (None, False):
            value = self._visit(extra, f"{hint}-additional", f"{path}/additionalProperties")
            extra_kv = self.rule(f"{hint}-additional-kv", f'{self.primitive("string")} ":" space {value}')
        req = [kvs[k] for k in names if k in required]
        opt = [kvs[k] for k in names if k not in required]
        return self.rule(hint, self._object_body(req, opt, extra_kv, hint))

    def _object_body(self, req: list[str], opt: list[str], extra_kv: str | None, hint: str) -> str:
        tail = "".join(f' ( "," space {kv} )?' for kv in opt)
        more = f' ( "," space {extra_kv} )*' if extra_kv else ""
        if req:
            return '"{" space ' + ' "," space '.join(req) + tail + more + ' "}" space'
        # no required property: whichever optional one comes first has no comma before it
        firsts = []
        for i, kv in enumerate(opt):
            rest = "".join(f' ( "," space {k} )?' for k in opt[i + 1:]) + more
            firsts.append(f"{kv}{self._tail(rest, hint)}")
        if extra_kv:
            firsts.append(f"{extra_kv}{more}")
        return '"{" space ( ' + " | ".join(firsts) + ' )? "}" space' if firsts else '"{" space "}" space'

    def _tail(self, rest: str, hint: str) -> str:
        return f" {self.rule(f'{hint}-rest', rest.strip())}" if rest else ""

    def _array(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        items = schema.get("items", True)
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # draft 4 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        lo = count_keyword(schema, "minItems", path, 0) or 0
        hi = count_keyword(schema, "maxItems", path, None)
        if hi is not None and hi < lo:
            raise fail(path, f"maxItems {hi} is below minItems {lo}")
        if lo > self.limits.max_repetition:
            raise fail(f"{path}/minItems", f"{lo} is more than the limit of {self.limits.max_repetition}")
        self.primitive("space")
        if prefix is not None:
            return self._tuple(prefix, items, lo, hint, path)
        if hi == 0 or items is False:
            if lo > 0:
                raise fail(path, "minItems cannot be met when no item is allowed")
            return self.rule(hint, '"[" space "]" space')
        item = self._visit(items, f"{hint}-item", f"{path}/items")
        return self.rule(hint, f'"[" space {self._repeat(item, lo, hi)} "]" space')

    def _repeat(self, item: str, lo: int, hi: int | None) -> str:
        """``item`` lo..hi times, comma separated (GBNF repetition on a rule reference)."""
        if hi is not None and hi > self.limits.max_repetition:
            hi = None
        if lo == 0:
            if hi == 1:
                return f"{item}?"
            more = "*" if hi is None else f"{{0,{hi - 1}}}"
            return f'( {item} ( "," space {item} ){more} )?'
        more = f"{{{lo - 1},}}" if hi is None else (f"{{{lo - 1}}}" if hi == lo else f"{{{lo - 1},{hi - 1}}}")
        return f'{item} ( "," space {item} ){more}' if (lo, hi) != (1, 1) else item

    def _tuple(self, prefix: Any, items: Any, lo: int, hint: str, path: str) -> str:
        if not isinstance(prefix, list):
            raise fail(f"{path}/prefixItems", "must be a list of schemas")
        names = [self._visit(s, f"{hint}-{i}", f"{path}/prefixItems/{i}") for i, s in enumerate(prefix)]
        if lo > len(names):
            if items is False:
                raise fail(path, "minItems cannot be met with the listed prefixItems")
            extra = self._visit(items, f"{hint}-item", f"{path}/items")
            names += [extra] * (lo - len(names))
        body = ' "," space '.join(names)
        return self.rule(hint, f'"[" space {body} "]" space' if names else '"[" space "]" space')
