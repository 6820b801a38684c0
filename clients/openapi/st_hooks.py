"""Schemathesis checks of daybook's contract (loaded with SCHEMATHESIS_HOOKS=st_hooks).

`valid_requests_accepted` replaces the built-in `positive_data_acceptance`: a request that
matches the document must not be refused for its shape. It may still be refused by a rule no
schema can state — a time past retention, an event id whose date does not match its trigger,
offsets beyond the segment's size, a cursor the server did not hand out — and those refusals
are the codes in SEMANTIC. Any other 400/422 (`invalid`, `invalid_size`, `invalid_media`,
`invalid_query`, …) means the document allows what the server refuses: a failure.
"""

import schemathesis
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

# Refusals that depend on the clock, on other fields or on server state, not on the shape.
SEMANTIC = {
    "past_retention",
    "in_future",
    "invalid_event_id",
    "invalid_trigger_time",
    "foreign_event",
    "ended_before_start",
    "invalid_offsets",
    "invalid_keyframes",
    "invalid_cursor",
    "invalid_range",
}


def _semantic(error):
    code, message = error.get("code"), error.get("message", "")
    # `invalid_mapping` is also the code of "too many events" and "index too large", which
    # the document states (maxItems, maximum); only "mapped twice" is beyond a schema.
    return code in SEMANTIC or (code == "invalid_mapping" and "mapped twice" in message)


def _is_batch(case):
    return case.operation.label.endswith("/reports")


@schemathesis.check
def valid_requests_accepted(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
        return None
    if response.status_code in (400, 422):
        error = response.json().get("error", {})
        if not _semantic(error):
            raise AssertionError(
                f"a request the document allows was refused for its shape: "
                f"{response.status_code} {error.get('code')}: {error.get('message')}"
            )
    if _is_batch(case) and response.status_code == 200:
        for result in response.json()["results"]:
            error = result.get("error")
            if error and not _semantic(error):
                raise AssertionError(
                    f"batch item {result['index']} the document allows was refused: "
                    f"{result['status']} {error.get('code')}: {error.get('message')}"
                )
    return None


@schemathesis.check
def invalid_batch_items_rejected(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative or not _is_batch(case):
        return None
    if is_unexpected_http_status_case(case) or response.status_code != 200:
        return None
    if response.json()["rejected"] == 0:
        raise AssertionError("a batch that breaks the document was accepted in full")
    return None
