"""Storage for subscriptions and their items."""

from allotment.storage.repositories.base import Repository


class SubscriptionRepository(Repository):
    pass
