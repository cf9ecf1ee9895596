"""Each person's email subscription to the events topic (DESIGN §7), made and kept by chute.

On AWS every person who wants email gets their own SNS email subscription whose filter policy
lets through only messages carrying their `user_id` and one of the events they want by email;
chute publishes each email once, with those attributes (chalicelib.notify). The subscription is
made the first time it is needed — when a person with an address starts a session or sets their
preferences — and follows their preferences: new events rewrite its filter policy, no email
event at all removes it, another address replaces it. What chute made is kept on the person's
PREFS item, so a session start costs no SNS call once it is in place.

Locally (no `email_topic_arn`) nobody is subscribed: the outbox queue's subscription takes every
event and the `make run` terminal shows the emails.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib.config import ApiSettings
from chalicelib.log import logger
from chalicelib.models import Event, Preferences
from chalicelib.services import Services
from chalicelib.store import Store
from chalicelib.store.items import EmailSubscription, PreferencesItem

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


def filter_policy(owner: str, events: list[Event]) -> str:
    """The SNS filter policy of a person's email subscription (message attributes)."""
    return json.dumps({"user_id": [owner], "event": [e.value for e in events]})


def sync_email_subscription(
    sns: SNSClient, topic_arn: str, store: Store, item: PreferencesItem, address: str | None
) -> PreferencesItem:
    """Make the person's subscription match their email preferences; the item as it is now."""
    events = item.preferences.email
    current = item.subscription
    wanted = [e.value for e in events]
    if address is None and current is not None:
        address = current.address  # a request without the claim changes nothing of the address
    if current is not None and current.address == address and current.events == wanted:
        return item  # already so: no SNS call
    if current is not None and (not events or current.address != address):
        sns.unsubscribe(SubscriptionArn=current.arn)
        current = None
    subscription: EmailSubscription | None = None
    if events and address:
        if current is None:
            arn = sns.subscribe(
                TopicArn=topic_arn,
                Protocol="email",
                Endpoint=address,
                Attributes={"FilterPolicy": filter_policy(item.owner, events)},
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
        else:
            arn = current.arn
            sns.set_subscription_attributes(
                SubscriptionArn=arn,
                AttributeName="FilterPolicy",
                AttributeValue=filter_policy(item.owner, events),
            )
        subscription = EmailSubscription(address=address, arn=arn, events=wanted)
    updated = item.model_copy(update={"subscription": subscription})
    store.put_preferences_item(updated)
    logger.info(
        "email subscription synced",
        extra={"user_id": item.owner, "events": len(wanted), "subscribed": bool(subscription)},
    )
    return updated


def save_preferences(
    services: Services[ApiSettings], owner: str, preferences: Preferences, address: str | None
) -> None:
    """`PUT /me/preferences`: store them, and on AWS bring the person's subscription in step."""
    topic = services.settings.email_topic_arn
    if not topic:
        services.store.put_preferences(owner, preferences)
        return
    before = services.store.get_preferences_item(owner)
    item = before.model_copy(update={"preferences": preferences})
    if sync_email_subscription(services.sns, topic, services.store, item, address) is item:
        services.store.put_preferences(owner, preferences)  # the subscription was already so
