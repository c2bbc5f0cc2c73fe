"""Work a CountTokens call used to redo on every call, now done once (issue 18: server CPU per call).

Every call of a worker parsed its model reference three times (the service's checks, resolution, the load),
read both sets of an empty special-token policy message and bound the default policy with a pass over what
it lists: ~12 us of the ~45 us the servicer and service spent on a ~1 KB CountTokens
(python -m bench service percall; docs/decisions.md, "CPU per CountTokens call"). The answers do not change:
tests/server/test_rpcs.py and the policy tests hold them.
"""

from __future__ import annotations

import pytest
from tokend_api.v1 import tokenizer_pb2 as pb

import tokend
from tokend.registry.model_ref import MalformedModelRef, ParsedModelRef, parse_model_ref
from tokend.server.messages import policy
from tokend.service.special_policy import ALL, DEFAULT_POLICY, SpecialTokenPolicy


def test_an_unset_policy_message_is_the_default_policy_itself():
    assert policy(pb.SpecialTokenPolicy()) is DEFAULT_POLICY
    assert policy(pb.CountTokensRequest(model="m").special_tokens) is DEFAULT_POLICY


@pytest.mark.parametrize(("message", "expected"), [
    (pb.SpecialTokenPolicy(allowed=pb.SpecialTokenSet()), DEFAULT_POLICY),  # present but empty: read, same meaning
    (pb.SpecialTokenPolicy(allowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_ALL)),
     SpecialTokenPolicy(allowed=ALL)),
    (pb.SpecialTokenPolicy(disallowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_NONE)),
     SpecialTokenPolicy(disallowed=frozenset())),
])  # fmt: skip
def test_a_policy_message_with_a_set_is_still_read(message, expected):
    assert policy(message) == expected


def test_a_model_reference_is_parsed_once():
    assert parse_model_ref("cl100k_base@1") is parse_model_ref("cl100k_base@1")
    assert parse_model_ref("cl100k_base") == ParsedModelRef("cl100k_base", None, None)


def test_a_reference_that_does_not_parse_raises_every_time():
    for _ in range(2):
        with pytest.raises(MalformedModelRef):
            parse_model_ref("cl100k_base@")
    with pytest.raises(ValueError):
        parse_model_ref(3)  # type: ignore[arg-type]


def test_binding_the_default_policy_reads_nothing_it_lists():
    encoding = tokend.get_encoding("cl100k_base")
    bound = DEFAULT_POLICY.bind(encoding)
    assert bound.allowed_special is DEFAULT_POLICY.allowed
    assert (bound.disallowed_special, bound.other_disallowed, bound.encoding) == (ALL, (), encoding)
