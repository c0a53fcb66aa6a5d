"""Search checks run inside the cluster's Django, on its real PostgreSQL (full-text search and its index).

tests/cluster/test_cluster.py runs `check()` through `manage.py shell`; each check raises
AssertionError on a wrong answer, and the last line printed is the JSON list of checks passed.
"""

import json
import uuid

from django.contrib.auth import get_user_model
from django.db import connection

from chat.domain import search
from chat.models import Membership, Message, Room


def _setup():
    tag = uuid.uuid4().hex[:8]
    user_model = get_user_model()
    insider = user_model.objects.create(username=f"in-{tag}")
    outsider = user_model.objects.create(username=f"out-{tag}")
    public = Room.objects.create(slug=f"pub-{tag}", name="pub")
    private = Room.objects.create(slug=f"priv-{tag}", name="priv", private=True)
    Membership.objects.create(room=private, user=insider)
    word = f"zebra{tag}"
    Message.objects.create(room=public, seq=1, version=1, user=insider, body=f"the {word} crossed the road")
    Message.objects.create(room=private, seq=1, version=1, user=insider, body=f"the secret {word} plans")
    Message.objects.create(room=public, seq=2, version=2, user=insider, body=f"{word}s are striped")  # no stemming
    return insider, outsider, word


def private_rooms_stay_private():
    insider, outsider, word = _setup()
    outside, _ = search.search(user=outsider, q=word)
    inside, _ = search.search(user=insider, q=word)
    assert [m["body"] for m in outside] == [f"the {word} crossed the road"], outside
    assert sorted(m["room"].split("-")[0] for m in inside) == ["priv", "pub"], inside


def websearch_syntax_works():
    insider, _, word = _setup()
    phrase, _ = search.search(user=insider, q=f'"secret {word}"')
    assert [m["body"] for m in phrase] == [f"the secret {word} plans"], phrase
    excluded, _ = search.search(user=insider, q=f"{word} -secret")
    assert [m["body"] for m in excluded] == [f"the {word} crossed the road"], excluded


def the_gin_index_serves_the_query():
    insider, _, word = _setup()
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(f"EXPLAIN SELECT id FROM {Message._meta.db_table} WHERE to_tsvector('simple', body) @@ "
                       "websearch_to_tsquery('simple', %s)", [word])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = on")
    assert "chat_message_body_fts" in plan, plan


CHECKS = [private_rooms_stay_private, websearch_syntax_works, the_gin_index_serves_the_query]


def check() -> None:
    for fn in CHECKS:
        fn()
    print(json.dumps([fn.__name__ for fn in CHECKS]))
