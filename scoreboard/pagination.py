from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=` with a bounded page size."""

    default_limit = 20
    max_limit = 100
