"""A person's email subscription follows their preferences, against moto's SNS."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.config import ApiSettings
from chalicelib.models import Event, Preferences
from chalicelib.services import Services
from chalicelib.store import Store
from chalicelib.subscriptions import (
    save_preferences,
    sync_best_effort,
    sync_email_subscription,
)
from infra.provision import Provisioned

ENDINGS = [Event.COMPLETED, Event.COMPLETED_WITH_ERRORS, Event.FAILED]


def email_subscriptions(sns: Any, topic: str) -> list[dict[str, Any]]:
    """Each email subscription on the topic with its address and filter policy."""
    found = []
    for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        if s["Protocol"] != "email":
            continue
        attributes = sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])
        policy = json.loads(attributes["Attributes"].get("FilterPolicy", "null"))
        found.append({"address": s["Endpoint"], "policy": policy})
    return found


@pytest.fixture
def sns(aws: boto3.Session) -> Any:
    return aws.client("sns")


def test_a_person_is_subscribed_once_with_their_user_and_email_events(
    sns: Any, store: Store, provisioned: Provisioned
) -> None:
    topic = provisioned.topic_arn
    item = store.get_preferences_item("alice")
    synced = sync_email_subscription(sns, topic, store, item, "alice@example.com")

    events = [e.value for e in Preferences().email]
    assert email_subscriptions(sns, topic) == [
        {"address": "alice@example.com", "policy": {"user_id": ["alice"], "event": events}}
    ]
    assert synced.subscription is not None
    assert store.get_preferences_item("alice") == synced
    # Once in place, a session start makes no SNS call: the item says it is so.
    calls: list[str] = []
    sns.meta.events.register("before-call.sns", lambda model, **_: calls.append(model.name))
    assert sync_email_subscription(sns, topic, store, synced, "alice@example.com") == synced
    assert calls == []


def test_the_filter_follows_the_preferences_and_goes_with_the_last_email_event(
    sns: Any, store: Store, provisioned: Provisioned
) -> None:
    topic = provisioned.topic_arn
    item = sync_email_subscription(
        sns, topic, store, store.get_preferences_item("bob"), "bob@example.com"
    )
    store.put_preferences("bob", Preferences(email=ENDINGS, in_app=[]))
    changed = sync_email_subscription(sns, topic, store, store.get_preferences_item("bob"), None)
    assert changed.subscription is not None
    assert item.subscription is not None
    assert changed.subscription.arn == item.subscription.arn  # the same subscription, refiltered
    assert email_subscriptions(sns, topic) == [
        {
            "address": "bob@example.com",
            "policy": {"user_id": ["bob"], "event": [e.value for e in ENDINGS]},
        }
    ]
    # The preferences written since keep the subscription chute made.
    assert store.get_preferences_item("bob").subscription == changed.subscription

    store.put_preferences("bob", Preferences(email=[], in_app=list(Event)))
    gone = sync_email_subscription(sns, topic, store, store.get_preferences_item("bob"), None)
    assert gone.subscription is None
    assert email_subscriptions(sns, topic) == []


def test_a_new_address_replaces_the_old_subscription(
    sns: Any, store: Store, provisioned: Provisioned
) -> None:
    topic = provisioned.topic_arn
    first = sync_email_subscription(
        sns, topic, store, store.get_preferences_item("carol"), "carol@old.example"
    )
    sync_email_subscription(sns, topic, store, first, "carol@new.example")
    assert [s["address"] for s in email_subscriptions(sns, topic)] == ["carol@new.example"]


def test_without_an_address_nobody_is_subscribed(
    sns: Any, store: Store, provisioned: Provisioned
) -> None:
    item = sync_email_subscription(
        sns, provisioned.topic_arn, store, store.get_preferences_item("dave"), None
    )
    assert item.subscription is None
    assert email_subscriptions(sns, provisioned.topic_arn) == []


@pytest.mark.parametrize("on_aws", [True, False])
def test_saving_preferences_keeps_the_subscription_in_step_on_aws_only(
    aws: boto3.Session, sns: Any, provisioned: Provisioned, on_aws: bool
) -> None:
    topic = provisioned.topic_arn
    settings = ApiSettings(
        bucket=provisioned.bucket,
        table=provisioned.table,
        email_topic_arn=topic if on_aws else None,
    )
    services = Services(settings, session=aws)
    save_preferences(services, "erin", Preferences(email=ENDINGS), "erin@example.com")

    assert services.store.get_preferences("erin") == Preferences(email=ENDINGS)
    expected = [
        {
            "address": "erin@example.com",
            "policy": {"user_id": ["erin"], "event": [e.value for e in ENDINGS]},
        }
    ]
    assert email_subscriptions(sns, topic) == (expected if on_aws else [])


def test_a_subscription_removed_outside_chute_is_made_again(
    sns: Any, store: Store, provisioned: Provisioned
) -> None:
    topic = provisioned.topic_arn
    first = sync_email_subscription(
        sns, topic, store, store.get_preferences_item("fay"), "fay@example.com"
    )
    assert first.subscription is not None
    sns.unsubscribe(SubscriptionArn=first.subscription.arn)  # the person clicked "unsubscribe"

    store.put_preferences("fay", Preferences(email=ENDINGS))
    again = sync_email_subscription(sns, topic, store, store.get_preferences_item("fay"), None)
    assert again.subscription is not None
    assert again.subscription.arn != first.subscription.arn
    assert email_subscriptions(sns, topic) == [
        {
            "address": "fay@example.com",
            "policy": {"user_id": ["fay"], "event": [e.value for e in ENDINGS]},
        }
    ]


def test_recording_the_subscription_keeps_preferences_saved_meanwhile(
    sns: Any, store: Store, provisioned: Provisioned
) -> None:
    stale = store.get_preferences_item("gil")  # read before the person saved new preferences
    store.put_preferences("gil", Preferences(email=ENDINGS, in_app=[]))
    sync_email_subscription(sns, provisioned.topic_arn, store, stale, "gil@example.com")

    assert store.get_preferences("gil") == Preferences(email=ENDINGS, in_app=[])
    assert store.get_preferences_item("gil").subscription is not None


def test_an_sns_failure_never_fails_the_session_or_the_preferences(
    aws: boto3.Session, provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ApiSettings(
        bucket=provisioned.bucket, table=provisioned.table, email_topic_arn=provisioned.topic_arn
    )
    services = Services(settings, session=aws)

    def refuse(**_: Any) -> None:
        error: Any = {"Error": {"Code": "FilterPolicyLimitExceeded", "Message": "200 policies"}}
        raise ClientError(error, "Subscribe")

    monkeypatch.setattr(services.sns, "subscribe", refuse)
    save_preferences(services, "hal", Preferences(email=ENDINGS), "hal@example.com")
    sync_best_effort(services, services.store.get_preferences_item("hal"), "hal@example.com")

    assert services.store.get_preferences("hal") == Preferences(email=ENDINGS)
    assert services.store.get_preferences_item("hal").subscription is None
