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

import contextlib
import json
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

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
    """Make the person's subscription match their email preferences; the item as it is now.

    A subscription removed outside chute (the person unsubscribed from an email, or never
    confirmed and SNS dropped it) is made again. SNS errors are the caller's to catch."""
    events = item.preferences.email
    current = item.subscription
    wanted = [e.value for e in events]
    if address is None and current is not None:
        address = current.address  # a request without the claim changes nothing of the address
    if current is not None and current.address == address and current.events == wanted:
        return item  # already so: no SNS call
    if current is not None and (not events or current.address != address):
        with contextlib.suppress(sns.exceptions.NotFoundException):
            sns.unsubscribe(SubscriptionArn=current.arn)
        current = None
    subscription: EmailSubscription | None = None
    if events and address:
        policy = filter_policy(item.owner, events)
        arn = current.arn if current is not None else None
        if arn is not None:
            try:
                sns.set_subscription_attributes(
                    SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue=policy
                )
            except (sns.exceptions.NotFoundException, sns.exceptions.InvalidParameterException):
                arn = None  # gone: subscribe again
        if arn is None:
            arn = sns.subscribe(
                TopicArn=topic_arn,
                Protocol="email",
                Endpoint=address,
                Attributes={"FilterPolicy": policy},
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
        subscription = EmailSubscription(address=address, arn=arn, events=wanted)
    store.set_email_subscription(item.owner, subscription, defaults=item.preferences)
    logger.info(
        "email subscription synced",
        extra={"user_id": item.owner, "events": len(wanted), "subscribed": bool(subscription)},
    )
    return item.model_copy(update={"subscription": subscription})


def sync_best_effort(
    services: Services[ApiSettings], item: PreferencesItem, address: str | None
) -> None:
    """On AWS, bring the person's subscription in step; a failure (SNS throttling, the topic's
    filter-policy quota) is logged and tried again at their next session or preferences save,
    never the request's failure."""
    topic = services.settings.email_topic_arn
    if not topic or (address is None and item.subscription is None):
        return
    try:
        sync_email_subscription(services.sns, topic, services.store, item, address)
    except ClientError as exc:
        logger.warning(
            "email subscription not synced",
            extra={"user_id": item.owner, "error": exc.response.get("Error", {}).get("Code")},
        )


def save_preferences(
    services: Services[ApiSettings], owner: str, preferences: Preferences, address: str | None
) -> None:
    """`PUT /me/preferences`: store them, and on AWS bring the person's subscription in step."""
    services.store.put_preferences(owner, preferences)
    if services.settings.email_topic_arn:
        before = services.store.get_preferences_item(owner)
        sync_best_effort(services, before.model_copy(update={"preferences": preferences}), address)
