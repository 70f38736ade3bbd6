"""Vocabularies the demo corpus is composed from: domains, entities, fields and phrasing.

Entities are declared compactly as ``"field:type ..."`` strings so that adding a domain is a
one-line change. Field types carry meaning, not only a storage type, because ops and sample
values depend on it: ``text`` is a human label, ``code`` an identifier such as a SKU, ``money``
an integer amount in cents, ``count`` a non-negative integer, ``flag`` a boolean and
``status`` an atom drawn from the values listed after it (``status=a|b|c``).
"""

from __future__ import annotations

from dataclasses import dataclass

NUMERIC = ("money", "count", "int", "float")
STRINGY = ("text", "string", "code", "email")


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    values: tuple[str, ...] = ()  # the atoms of a ``status`` field


@dataclass(frozen=True)
class Entity:
    singular: str  # snake_case, e.g. "tax_rate"
    plural: str
    context: str  # the Phoenix context module, e.g. "Catalog"
    fields: tuple[Field, ...]
    samples: tuple[str, ...]  # values for the label (first ``text``) field

    @property
    def camel(self) -> str:
        return camel(self.singular)

    @property
    def human(self) -> str:
        return self.singular.replace("_", " ")

    @property
    def a(self) -> str:
        """The human name with its indefinite article: "an invoice", "a product"."""
        return a_an(self.human)

    @property
    def human_plural(self) -> str:
        return self.plural.replace("_", " ")

    @property
    def label(self) -> Field:
        """The field a person would read first (name, title, subject...)."""
        return next((f for f in self.fields if f.type == "text"), self.fields[0])

    def of(self, *types: str) -> list[Field]:
        return [f for f in self.fields if f.type in types]


@dataclass(frozen=True)
class Domain:
    key: str
    app: str  # the application namespace, e.g. "Shop"
    blurb: str  # "an online shop", used in prose
    entities: tuple[Entity, ...]


def a_an(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeio" else "a ") + phrase


def camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def underscore(name: str) -> str:
    """Macro.underscore for the names this corpus uses (no acronyms)."""
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def plural(word: str) -> str:
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def _fields(spec: str) -> tuple[Field, ...]:
    out = []
    for item in spec.split():
        name, kind = item.split(":")
        if kind.startswith("status="):
            out.append(Field(name, "status", tuple(kind[len("status="):].split("|"))))
        else:
            out.append(Field(name, kind))
    return tuple(out)


# domain key -> (app, blurb, {entity: (context, fields, label samples)})
_DOMAINS: dict[str, tuple[str, str, dict[str, tuple[str, str, tuple[str, ...]]]]] = {
    "shop": ("Shop", "an online shop", {
        "product": ("Catalog", "name:text sku:code price:money stock:count active:flag",
                    ("Desk lamp", "Oak shelf", "Wool rug", "Tea kettle", "Canvas tote")),
        "order": ("Orders", "reference:code total:money status=pending|paid|shipped placed_at:datetime",
                  ()),
        "coupon": ("Promotions", "code:code percent:int uses:count expires_on:date active:flag", ()),
        "review": ("Catalog", "author:text rating:int body:string approved:flag",
                   ("Ada", "Grace", "Linus", "Joe", "Rich")),
        "cart_item": ("Carts", "title:text quantity:count unit_price:money gift:flag",
                      ("Notebook", "Pen set", "Desk mat", "Mug")),
    }),
    "billing": ("Billing", "a billing system", {
        "invoice": ("Invoices", "number:code amount:money currency:string status=draft|sent|paid due_on:date",
                    ()),
        "payment": ("Payments", "reference:code amount:money method:string paid_at:datetime refunded:flag",
                    ()),
        "subscription": ("Subscriptions", "plan:text seats:count monthly_fee:money active:flag",
                         ("Starter", "Team", "Business", "Enterprise")),
        "refund": ("Payments", "reason:text amount:money status=requested|approved|rejected",
                   ("Damaged item", "Late delivery", "Duplicate charge", "Wrong size")),
        "tax_rate": ("Taxes", "region:text rate:float inclusive:flag",
                     ("Bavaria", "Ontario", "Texas", "Catalonia")),
    }),
    "shipping": ("Shipping", "a shipping service", {
        "shipment": ("Shipments", "tracking_code:code carrier:string weight:float status=queued|in_transit|delivered shipped_at:datetime",
                     ()),
        "parcel": ("Shipments", "label:text weight:float fragile:flag insured_value:money",
                   ("Books", "Glassware", "Clothes", "Laptop")),
        "route": ("Routes", "origin:text destination:string distance:int toll:flag",
                  ("Lyon", "Porto", "Gdansk", "Malmo")),
        "address": ("Addresses", "street:text city:string postcode:code country:string",
                    ("1 Rue Cler", "12 High St", "5 Main Ave", "7 Elm Rd")),
    }),
    "sensors": ("Sensors", "a sensor network", {
        "reading": ("Readings", "sensor:code value:float unit:string recorded_at:datetime", ()),
        "device": ("Devices", "serial:code firmware:string battery:int online:flag",
                   ()),
        "alert": ("Alerts", "message:text level=info|warning|critical threshold:float acknowledged:flag",
                  ("Too hot", "Battery low", "Door open", "Humidity high")),
        "calibration": ("Devices", "sensor:code offset:float scale:float applied_on:date", ()),
    }),
    "chat": ("Chat", "a chat application", {
        "message": ("Messages", "body:text sender:string room:string sent_at:datetime edited:flag",
                    ("hello there", "see you soon", "on my way", "sounds good")),
        "room": ("Rooms", "name:text topic:string capacity:count private:flag",
                 ("general", "random", "support", "design")),
        "member": ("Rooms", "nickname:text role=owner|moderator|guest joined_at:datetime muted:flag",
                   ("ada", "grace", "linus", "jose")),
        "reaction": ("Messages", "emoji:text count:count", ("thumbs_up", "heart", "tada", "eyes")),
    }),
    "accounts": ("Accounts", "an accounts service", {
        "user": ("Users", "name:text email:email age:int confirmed:flag role=admin|member|viewer",
                 ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Joan Clarke")),
        "profile": ("Profiles", "display_name:text bio:string locale:string public:flag",
                    ("ada", "grace_h", "alan.t", "joan")),
        "session": ("Sessions", "token:code ip_address:string expires_at:datetime remembered:flag", ()),
        "team": ("Teams", "name:text slug:string size:count archived:flag",
                 ("Core", "Platform", "Growth", "Payments")),
    }),
    "inventory": ("Inventory", "an inventory system", {
        "item": ("Stock", "sku:code description:text quantity:count reorder_level:count location:string",
                 ("Steel bolt", "Copper wire", "Pine plank", "Rubber seal")),
        "warehouse": ("Warehouses", "code:code city:text capacity:count active:flag",
                      ("Leeds", "Bremen", "Turin", "Ghent")),
        "supplier": ("Suppliers", "name:text email:email lead_time_days:int rating:float",
                     ("Acme", "Globex", "Initech", "Umbrella")),
        "stock_movement": ("Stock", "reason:text quantity:int moved_at:datetime kind=inbound|outbound|adjustment",
                           ("restock", "sale", "damage", "audit")),
    }),
    "scheduling": ("Scheduling", "a scheduling tool", {
        "appointment": ("Calendar", "title:text starts_at:datetime duration:count status=booked|cancelled|done",
                        ("Dentist", "Standup", "Haircut", "Review")),
        "shift": ("Rota", "worker:text hours:float week:count overtime:flag",
                  ("Maria", "Tom", "Ines", "Kofi")),
        "slot": ("Calendar", "room:text capacity:count booked:count starts_at:datetime",
                 ("Room A", "Room B", "Studio", "Lab")),
        "reminder": ("Reminders", "message:text channel:string send_at:datetime sent:flag",
                     ("Pay rent", "Call mum", "Renew passport", "Water plants")),
    }),
    "analytics": ("Analytics", "an analytics platform", {
        "event": ("Events", "name:text source:string value:float occurred_at:datetime",
                  ("signup", "checkout", "login", "search")),
        "metric": ("Metrics", "name:text value:float unit:string sampled_on:date",
                   ("latency", "throughput", "error_rate", "uptime")),
        "page_view": ("Events", "path:text duration:count referrer:string bounced:flag",
                      ("/home", "/pricing", "/blog", "/docs")),
        "funnel": ("Funnels", "name:text steps:count conversion:float active:flag",
                   ("Onboarding", "Checkout", "Upgrade", "Trial")),
    }),
    "library": ("Library", "a lending library", {
        "book": ("Catalogue", "title:text author:string isbn:code pages:count available:flag",
                 ("Dune", "Emma", "Ulysses", "Beloved", "Middlemarch")),
        "loan": ("Loans", "borrower:text due_on:date renewals:count returned:flag",
                 ("Nadia", "Oscar", "Priya", "Quentin")),
        "patron": ("Patrons", "name:text email:email fines:money active:flag",
                   ("Nadia", "Oscar", "Priya", "Quentin")),
    }),
    "blog": ("Blog", "a blogging engine", {
        "post": ("Posts", "title:text slug:string views:count published:flag published_on:date",
                 ("Hello world", "Why Elixir", "On testing", "Release notes")),
        "comment": ("Comments", "author:text body:string likes:count approved:flag",
                    ("sam", "kim", "lee", "ana")),
        "tag": ("Posts", "name:text usage_count:count featured:flag",
                ("elixir", "otp", "phoenix", "ecto")),
    }),
    "staff": ("Staff", "an HR system", {
        "employee": ("People", "name:text department:string salary:money hired_on:date active:flag",
                     ("Hana", "Ivan", "Jonas", "Keiko")),
        "leave_request": ("Leave", "reason:text days:count status=pending|approved|denied starts_on:date",
                          ("holiday", "sick", "training", "moving")),
        "timesheet": ("Time", "owner:text hours:float week:count approved:flag",
                      ("Hana", "Ivan", "Jonas", "Keiko")),
    }),
    "fleet": ("Fleet", "a vehicle fleet manager", {
        "vehicle": ("Vehicles", "plate:code model:text mileage:count fuel_level:int available:flag",
                    ("Transit", "Sprinter", "Kangoo", "Vivaro")),
        "trip": ("Trips", "driver:text distance:float fuel_used:float status=planned|active|finished",
                 ("Omar", "Lena", "Piet", "Rosa")),
        "repair": ("Maintenance", "kind:text cost:money due_on:date done:flag",
                   ("brakes", "tyres", "oil", "inspection")),
    }),
    "kitchen": ("Kitchen", "a recipe manager", {
        "recipe": ("Recipes", "name:text servings:count prep_minutes:count vegetarian:flag",
                   ("Ratatouille", "Pad thai", "Goulash", "Shakshuka")),
        "ingredient": ("Recipes", "name:text quantity:float unit:string calories:count",
                       ("flour", "butter", "sugar", "eggs")),
    }),
    "support": ("Support", "a help desk", {
        "ticket": ("Tickets", "subject:text priority=low|normal|urgent status=open|pending|closed opened_at:datetime",
                   ("Login fails", "Refund please", "Slow page", "Broken link")),
        "agent": ("Agents", "name:text email:email open_tickets:count on_call:flag",
                  ("Mika", "Noor", "Pablo", "Rita")),
        "reply": ("Tickets", "body:text internal:flag sent_at:datetime",
                  ("Thanks for waiting", "Fixed now", "Can you retry?", "Escalated")),
    }),
    "courses": ("Courses", "an e-learning platform", {
        "course": ("Catalog", "title:text credits:count level=beginner|intermediate|advanced published:flag",
                   ("Intro to OTP", "Ecto basics", "LiveView", "Testing")),
        "enrollment": ("Enrollments", "student:text progress:int grade:float completed:flag",
                       ("Ines", "Jamal", "Kira", "Luca")),
        "lesson": ("Catalog", "title:text minutes:count position:count free:flag",
                   ("Processes", "Messages", "Supervisors", "Releases")),
    }),
    "ledger": ("Ledger", "a bookkeeping ledger", {
        "entry": ("Entries", "memo:text amount:money kind=debit|credit posted_on:date",
                  ("rent", "salary", "coffee", "hosting")),
        "account": ("Accounts", "code:code name:text balance:money currency:string closed:flag",
                    ("Cash", "Bank", "Receivables", "Payables")),
    }),
}

_PLURALS = {"stock_movement": "stock_movements", "analysis": "analyses"}


def _parse_fields(spec: str) -> tuple[Field, ...]:
    # ``level=info|warning`` is shorthand for ``level:status=info|warning``
    return _fields(" ".join(i if ":" in i else i.replace("=", ":status=", 1) for i in spec.split()))


def _build() -> tuple[Domain, ...]:
    domains = []
    for key, (app, blurb, entities) in _DOMAINS.items():
        built = []
        for singular, (context, spec, samples) in entities.items():
            fields = _parse_fields(spec)
            built.append(Entity(singular, _PLURALS.get(singular, plural(singular)), context, fields, samples))
        domains.append(Domain(key, app, blurb, tuple(built)))
    return tuple(domains)


DOMAINS: tuple[Domain, ...] = _build()


# Sample values for string fields, by field name; other strings use GENERIC_WORDS.
STRING_POOLS: dict[str, tuple[str, ...]] = {
    "currency": ("EUR", "USD", "GBP", "JPY"),
    "method": ("card", "transfer", "paypal", "cash"),
    "carrier": ("dhl", "ups", "fedex", "postnl"),
    "destination": ("Bilbao", "Krakow", "Aarhus", "Genoa"),
    "city": ("Leeds", "Bremen", "Turin", "Ghent", "Lille"),
    "country": ("FR", "DE", "NL", "PT"),
    "unit": ("celsius", "kpa", "lux", "ms"),
    "firmware": ("1.0.4", "1.2.0", "2.0.1", "2.1.3"),
    "sender": ("ada", "grace", "linus", "jose"),
    "room": ("general", "random", "support", "design"),
    "topic": ("daily chat", "release plans", "help", "memes"),
    "locale": ("en", "de", "fr", "pt"),
    "ip_address": ("10.0.0.1", "10.0.0.2", "192.168.1.4", "172.16.0.9"),
    "slug": ("core", "platform", "growth", "payments"),
    "location": ("A1", "B4", "C2", "D7"),
    "channel": ("email", "sms", "push", "slack"),
    "referrer": ("google", "newsletter", "twitter", "direct"),
    "source": ("web", "ios", "android", "api"),
    "author": ("Herbert", "Austen", "Joyce", "Morrison"),
    "department": ("sales", "finance", "legal", "ops"),
    "body": ("Great value", "Works fine", "Too small", "Love it"),
}

GENERIC_WORDS = ("alpha", "bravo", "delta", "echo", "kilo", "lima", "oscar", "tango")

CODE_PREFIX = {
    "sku": "SKU", "reference": "REF", "code": "C", "number": "INV", "tracking_code": "TRK",
    "postcode": "PC", "sensor": "S", "serial": "SN", "token": "tok", "isbn": "978", "plate": "AB",
}

# Inclusive ranges for integer and float fields; others use the type default.
RANGES: dict[str, tuple[float, float]] = {
    "rating": (1, 5), "percent": (5, 60), "age": (18, 80), "battery": (0, 100),
    "progress": (0, 100), "fuel_level": (0, 100), "rate": (0.05, 0.25), "grade": (1.0, 6.0),
    "conversion": (0.01, 0.6), "scale": (0.5, 2.0), "offset": (-2.0, 2.0), "quantity": (1, 40),
    "lead_time_days": (1, 30), "distance": (5, 900), "hours": (4.0, 48.0), "week": (1, 52),
    "steps": (2, 8), "position": (1, 20), "credits": (1, 10), "servings": (1, 8),
}
TYPE_RANGES: dict[str, tuple[float, float]] = {
    "money": (150, 25000), "count": (0, 60), "int": (1, 400), "float": (0.5, 95.0),
}

ELIXIR_TYPES = {
    "text": "String.t()", "string": "String.t()", "code": "String.t()", "email": "String.t()",
    "money": "non_neg_integer()", "count": "non_neg_integer()", "int": "integer()",
    "float": "float()", "flag": "boolean()", "status": "atom()", "date": "Date.t()",
    "datetime": "DateTime.t()",
}
ECTO_TYPES = {
    "text": ":string", "string": ":string", "code": ":string", "email": ":string",
    "money": ":integer", "count": ":integer", "int": ":integer", "float": ":float",
    "flag": ":boolean", "date": ":date", "datetime": ":utc_datetime",
}

# Module-name suffixes by kind; a suffix also hints at what the module does.
PLAIN_SUFFIXES = (
    "Stats", "Helpers", "Formatter", "Filters", "Calculator", "Report", "Utils", "Rules",
    "Summary", "Query", "Ranking", "Insights", "Toolkit", "Digest",
)
PIPELINE_SUFFIXES = ("Import", "Ingest", "Export", "Aggregator", "Pipeline", "Loader", "Feed", "Sync")
VIEW_STYLES = ("JSON", "HTML", "View", "Components")

# Phrasing pools, so that docs and prose do not all read the same.
RETURNS = ("Returns", "Gives back", "Computes", "Builds")
LEADS = ("Use this", "Handy", "Call this", "Useful")
ADJ_ORDER = {"desc": ("highest", "largest", "biggest"), "asc": ("lowest", "smallest", "earliest")}
