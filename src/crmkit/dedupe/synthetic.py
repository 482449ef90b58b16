"""A seeded generator of realistic contact records with known duplicates.

Used by the tests and ``benchmarks/bench_dedupe.py`` to measure precision and recall
against a ground truth. People come from seven countries (US, GB, DE, FR, ES, IT, PL)
with their names (accents included), cities and postcodes, phone numbering (national
and international formats) and mail providers; many work for a company, and colleagues
share its name, domain and city. Common surnames follow a steep frequency curve and a
long tail of surnames is built from each language's word parts, so namesakes occur as
they do in real data. Some people are relatives of another (same surname, landline,
address; different first name and email): the classic false positive.

About ``duplicate_rate`` of the records are duplicates of an earlier person, with the
damage real CRM data shows: typos, swapped or abbreviated names, dropped accents,
changed case, other email or phone formats, a different or mistyped address, missing
fields. Each record carries ``entity_id``, the person it describes (the engine ignores
that key).

The word lists are written here because the generator must be deterministic and
dependency-free; a faker library would change its data between releases.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import unicodedata
from collections.abc import Iterator
from typing import Any, Final

from crmkit.normalize import email_match_key

__all__ = ["COUNTRIES", "generate", "true_pairs"]

Record = dict[str, Any]

_FIRST: Final[dict[str, str]] = {
    "US": "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William "
    "Barbara Richard Susan Joseph Jessica Thomas Sarah Christopher Karen Charles Lisa "
    "Daniel Nancy Matthew Betty Anthony Sandra Mark Ashley Donald Emily Steven Kimberly "
    "Andrew Donna Joshua Michelle Kevin Carol Brian Amanda George Melissa Timothy Deborah "
    "Ronald Stephanie Jason Rebecca Ryan Laura Jacob Sharon Gary Cynthia Nicholas Kathleen",
    "GB": "Oliver Olivia George Amelia Harry Isla Jack Ava Jacob Emily Charlie Sophia "
    "Thomas Grace Oscar Lily William Isabella James Mia Henry Ella Alfie Poppy Leo Freya "
    "Joshua Charlotte Archie Evie Ethan Sophie Isaac Jessica Alexander Alice Daniel Ruby "
    "Samuel Chloe Edward Florence Joseph Harriet Max Eleanor Lucas Imogen Theo Matilda",
    "DE": "Lukas Anna Leon Lea Finn Lena Jonas Hannah Paul Mia Maximilian Emma Felix Sophie "
    "Elias Marie Ben Johanna Noah Lina Luis Clara Jan Laura Tim Katharina Niklas Julia "
    "Moritz Sarah Jürgen Ursula Klaus Monika Wolfgang Petra Dieter Sabine Günter Renate "
    "Stefan Birgit Andreas Susanne Matthias Claudia Jörg Gisela Uwe Heike Sören Jördis",
    "FR": "Gabriel Emma Léo Jade Raphaël Louise Arthur Alice Louis Chloé Lucas Lina Adam "
    "Léa Hugo Manon Jules Rose Maël Anna Nathan Inès Théo Camille Tom Zoé Paul Juliette "
    "Mathis Sarah Noé Léna Jean Marie Pierre Nathalie Michel Isabelle François Sylvie "
    "Philippe Catherine Nicolas Françoise Olivier Hélène Frédéric Céline Stéphane Aurélie",
    "ES": "Hugo Lucía Martín Sofía Lucas María Mateo Martina Leo Paula Daniel Julia "
    "Alejandro Valeria Pablo Emma Manuel Daniela Álvaro Carla Adrián Alba Mario Noa "
    "David Sara Diego Carmen Javier Ana José Isabel Antonio Laura Francisco Cristina "
    "Juan Marta Jesús Pilar Miguel Rosa Rafael Dolores Fernando Elena Sergio Inés Íñigo Begoña",
    "IT": "Leonardo Sofia Francesco Aurora Alessandro Giulia Lorenzo Ginevra Mattia Alice "
    "Andrea Beatrice Gabriele Emma Riccardo Giorgia Tommaso Vittoria Edoardo Matilde "
    "Marco Chiara Giuseppe Francesca Giovanni Anna Antonio Maria Luca Elena Roberto Sara "
    "Stefano Paola Angelo Laura Paolo Valentina Davide Martina Niccolò Federica Fabio Silvia",
    "PL": "Antoni Zuzanna Jan Julia Jakub Zofia Aleksander Hanna Franciszek Maja Szymon "
    "Lena Filip Alicja Mikołaj Oliwia Stanisław Amelia Wojciech Natalia Piotr Anna "
    "Krzysztof Maria Andrzej Katarzyna Tomasz Małgorzata Paweł Agnieszka Marcin Barbara "
    "Michał Ewa Łukasz Magdalena Grzegorz Joanna Mateusz Aleksandra Dariusz Monika",
}

_LAST: Final[dict[str, str]] = {
    "US": "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez "
    "Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee "
    "Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen "
    "King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera",
    "GB": "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts "
    "Robinson Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke "
    "Patel Jackson Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker "
    "Harrison Morgan Allen James Scott Phillips Watson Davis Parker O'Brien McDonald",
    "DE": "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann "
    "Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun "
    "Krüger Hofmann Hartmann Lange Schmitt Werner Schmitz Krause Meier Lehmann Schmid "
    "Schulze Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang",
    "FR": "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon "
    "Michel Lefebvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont "
    "Lambert Fontaine Rousseau Vincent Muller Lefèvre Faure André Mercier Blanc Guérin "
    "Boyer Garnier Chevalier François Legrand Gauthier Garcia Perrin Robin Clément",
    "ES": "García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Martín "
    "Jiménez Ruiz Hernández Díaz Moreno Muñoz Álvarez Romero Alonso Gutiérrez Navarro "
    "Torres Domínguez Vázquez Ramos Gil Ramírez Serrano Blanco Molina Morales Suárez "
    "Ortega Delgado Castro Ortiz Rubio Marín Sanz Núñez Iglesias Medina Garrido",
    "IT": "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno "
    "Gallo Conti De Luca Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri Fontana "
    "Santoro Mariani Rinaldi Caruso Ferrara Galli Martini Leone Longo Gentile Martinelli "
    "Vitale Lombardo Serra Coppola De Santis D'Angelo Marchetti Parisi Villa Conte",
    "PL": "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński "
    "Szymański Woźniak Dąbrowski Kozłowski Jankowski Mazur Kwiatkowski Wojciechowski "
    "Krawczyk Kaczmarek Piotrowski Grabowski Zając Pawłowski Michalski Król Wieczorek "
    "Jabłoński Wróbel Nowakowski Majewski Olszewski Stępień Malinowski Jaworski Adamczyk",
}

# Word parts from which each country's long tail of surnames is built.
_TAIL: Final[dict[str, tuple[str, str]]] = {
    "US": (
        "Ash Black Brad Brook Cald Carr Crane Dal Dun Fair Gold Hart Hol Kings Lang Mar "
        "Nor Pem Ran Red Sher Stan Stock Thorn Wes Whit Win Wood",
        "ford ley ton well wood son by field man ridge ham worth stone brook ington",
    ),
    "GB": (
        "Ald Bar Bel Bram Brough Chal Cole Cress Dray Ell Fen Gar Hal Hux Lam Mel Nash Pen "
        "Rad Sal Stan Tal Thwait Wake Whar Wick Yar",
        "bury combe dale field ford ham hurst ley mere shaw stead thorpe ton well wick",
    ),
    "DE": (
        "Ahl Alt Bach Berg Brand Eich Feld Gold Grün Hag Hart Hof Holz Kirch Lind Mar Ober "
        "Ried Rosen Sand Schön Stein Sonn Wald Weiß Wies Zell",
        "mann er inger hofer berger meier huber ner bach hausen ler rich feld brink städt",
    ),
    "FR": (
        "Beau Bel Bois Bon Char Chau Clair Del Font Gal Grand Lar Mal Mont Mor Pel Ros Sau "
        "Val Ver Vil Lam Cour Gren Mas Riv",
        "mont court ville ier ard ot eau in ais and ois on et elle ot",
    ),
    "ES": (
        "Al Ar Bel Cal Cas Cer Es Fer Gal Gar Lar Lor Mar Mon Nav Or Pal Pe Quin Ro Sal "
        "Sol Tor Val Vel Zam",
        "ado ares ero illa ino ón anco edo uelo ega era ez aga ueta",
    ),
    "IT": (
        "Ab Al Bar Bel Bor Cal Car Cas Fal Fer Gal Lan Mar Mon Pal Pel Ros San Sor Tor Val "
        "Ven Ver Vil Zan Zor",
        "ini etti elli ucci one ari ato ese ani oni asso ardi ieri uzzi",
    ),
    "PL": (
        "Bart Bor Chmiel Czar Dęb Gór Grab Jast Kos Kras Lis Mal Mik Nad Ost Pol Rad Sob "
        "Stas Szew Tar Wal Wil Zal Zaw Żak",
        "owski ewski ański iński czyk ak ek owicz ecki icki ała iak uk ski",
    ),
}

# (city, postcode pattern): '#' is a digit, '@' a capital letter.
_CITIES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "US": (
        ("New York", "100##"),
        ("Los Angeles", "900##"),
        ("Chicago", "606##"),
        ("Houston", "770##"),
        ("Phoenix", "850##"),
        ("Philadelphia", "191##"),
        ("San Antonio", "782##"),
        ("San Diego", "921##"),
        ("Dallas", "752##"),
        ("Austin", "787##"),
        ("Seattle", "981##"),
        ("Boston", "021##"),
        ("Denver", "802##"),
        ("Atlanta", "303##"),
    ),
    "GB": (
        ("London", "SW1A #@@"),
        ("Manchester", "M# #@@"),
        ("Birmingham", "B# #@@"),
        ("Leeds", "LS# #@@"),
        ("Glasgow", "G# #@@"),
        ("Liverpool", "L# #@@"),
        ("Bristol", "BS# #@@"),
        ("Edinburgh", "EH# #@@"),
        ("Sheffield", "S# #@@"),
        ("Cardiff", "CF# #@@"),
    ),
    "DE": (
        ("Berlin", "10###"),
        ("Hamburg", "20###"),
        ("München", "80###"),
        ("Köln", "50###"),
        ("Frankfurt am Main", "60###"),
        ("Stuttgart", "70###"),
        ("Düsseldorf", "40###"),
        ("Leipzig", "04###"),
        ("Dresden", "01###"),
        ("Nürnberg", "90###"),
    ),
    "FR": (
        ("Paris", "750##"),
        ("Marseille", "130##"),
        ("Lyon", "690##"),
        ("Toulouse", "310##"),
        ("Nice", "060##"),
        ("Nantes", "440##"),
        ("Strasbourg", "670##"),
        ("Montpellier", "340##"),
        ("Bordeaux", "330##"),
        ("Lille", "590##"),
    ),
    "ES": (
        ("Madrid", "280##"),
        ("Barcelona", "080##"),
        ("Valencia", "460##"),
        ("Sevilla", "410##"),
        ("Zaragoza", "500##"),
        ("Málaga", "290##"),
        ("Bilbao", "480##"),
        ("Alicante", "030##"),
    ),
    "IT": (
        ("Roma", "001##"),
        ("Milano", "201##"),
        ("Napoli", "801##"),
        ("Torino", "101##"),
        ("Palermo", "901##"),
        ("Genova", "161##"),
        ("Bologna", "401##"),
        ("Firenze", "501##"),
    ),
    "PL": (
        ("Warszawa", "0#-###"),
        ("Kraków", "3#-###"),
        ("Łódź", "9#-###"),
        ("Wrocław", "5#-###"),
        ("Poznań", "6#-###"),
        ("Gdańsk", "8#-###"),
        ("Szczecin", "7#-###"),
    ),
}

# Country: (calling code, trunk prefix, landline prefixes, mobile prefixes, digits after).
# Country: (calling code, trunk prefix, landline prefixes, mobile prefixes, length of the
# national significant number for landlines and for mobiles).
_PHONES: Final[dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...], int, int]]] = {
    "US": ("1", "", ("212", "312", "415", "617", "206", "512", "303", "404"), ("917",), 10, 10),
    "GB": ("44", "0", ("20", "161", "121", "113", "141"), ("7700", "7400", "7911"), 10, 10),
    "DE": ("49", "0", ("30", "40", "89", "221", "69"), ("151", "160", "170"), 10, 11),
    "FR": ("33", "0", ("1", "4", "5"), ("6", "7"), 9, 9),
    "ES": ("34", "", ("91", "93", "96"), ("6", "7"), 9, 9),
    "IT": ("39", "", ("02", "06", "011"), ("3",), 10, 10),
    "PL": ("48", "", ("22", "12", "42", "71"), ("50", "60", "69"), 9, 9),
}

_FREE_MAIL: Final[dict[str, tuple[str, ...]]] = {
    "US": ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com"),
    "GB": ("gmail.com", "hotmail.co.uk", "yahoo.co.uk", "outlook.com", "btinternet.com"),
    "DE": ("gmail.com", "gmx.de", "web.de", "t-online.de", "outlook.de"),
    "FR": ("gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr"),
    "ES": ("gmail.com", "hotmail.es", "yahoo.es", "outlook.com", "telefonica.net"),
    "IT": ("gmail.com", "libero.it", "virgilio.it", "hotmail.it", "tiscali.it"),
    "PL": ("gmail.com", "wp.pl", "onet.pl", "interia.pl", "o2.pl"),
}

_TLD: Final = {
    "US": "com",
    "GB": "co.uk",
    "DE": "de",
    "FR": "fr",
    "ES": "es",
    "IT": "it",
    "PL": "pl",
}
_LEGAL: Final = {
    "US": ("Inc", "LLC", "Corp", "Group"),
    "GB": ("Ltd", "Limited", "PLC", "& Co"),
    "DE": ("GmbH", "AG", "KG", "GmbH & Co. KG"),
    "FR": ("SA", "SAS", "SARL", "Groupe"),
    "ES": ("SL", "SA", "Grupo", "y Asociados"),
    "IT": ("SpA", "Srl", "Gruppo", "& Figli"),
    "PL": ("Sp. z o.o.", "SA", "Grupa", "i Wspólnicy"),
}
_TRADES: Final = [
    "Logistics",
    "Consulting",
    "Systems",
    "Software",
    "Analytics",
    "Foods",
    "Energy",
    "Partners",
    "Solutions",
    "Media",
    "Robotics",
    "Labs",
    "Capital",
    "Design",
    "Engineering",
    "Retail",
    "Health",
    "Travel",
    "Networks",
]
_COUNTRY_NAMES: Final = {
    "US": ("US", "USA", "United States", "us"),
    "GB": ("GB", "UK", "United Kingdom", "England"),
    "DE": ("DE", "Germany", "Deutschland", "DEU"),
    "FR": ("FR", "France", "FRA", "fr"),
    "ES": ("ES", "Spain", "España", "ESP"),
    "IT": ("IT", "Italy", "Italia", "ITA"),
    "PL": ("PL", "Poland", "Polska", "POL"),
}

#: Countries and their share of the generated people.
COUNTRIES: Final = {
    "US": 0.30,
    "GB": 0.15,
    "DE": 0.15,
    "FR": 0.12,
    "ES": 0.10,
    "IT": 0.10,
    "PL": 0.08,
}

_ASCII_EXTRA: Final = str.maketrans({"ß": "ss", "ł": "l", "Ł": "L", "ø": "o", "æ": "ae"})


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_EXTRA))
    return "".join(ch for ch in decomposed if ch.isascii())


def _german_ascii(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
    return _ascii(text.translate(table))


def _digest(text: str) -> int:
    # Stable across processes, unlike hash(): the generator must give the same records.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _slug(text: str) -> str:
    return "".join(ch for ch in _ascii(text).lower() if ch.isalnum())


class _Generator:
    def __init__(self, seed: int, size: int) -> None:
        self.random = random.Random(seed)
        self._cumulative: dict[int, list[float]] = {}
        # Hashes of the addresses handed out: a mailbox belongs to one person.
        self.used_emails: set[int] = set()
        rnd = self.random
        self.first = {c: names.split() for c, names in _FIRST.items()}
        common = {c: names.split() for c, names in _LAST.items()}
        # Multi-word surnames ("De Luca") were split; glue the known particles back.
        for c, names in common.items():
            glued: list[str] = []
            for name in names:
                if glued and glued[-1] in ("De", "D'"):
                    glued[-1] = f"{glued[-1]} {name}"
                else:
                    glued.append(name)
            common[c] = glued
        self.common_last = common
        self.tail_last = {
            c: [a + b for a in heads.split() for b in tails.split()]
            for c, (heads, tails) in _TAIL.items()
        }
        self.countries = list(COUNTRIES)
        self.country_weights = list(COUNTRIES.values())
        # Companies: about one per 25 people, each in one country and city.
        self.companies: list[tuple[str, str, str, int]] = []
        for _ in range(max(40, size // 25)):
            country = rnd.choices(self.countries, self.country_weights)[0]
            if rnd.random() < 0.5:
                base = rnd.choice(self.common_last[country] + self.tail_last[country])
            else:
                base = f"{rnd.choice(self.tail_last[country])} {rnd.choice(_TRADES)}"
            name = f"{base} {rnd.choice(_LEGAL[country])}"
            domain = f"{_slug(base)}{rnd.randrange(10) if rnd.random() < 0.2 else ''}"
            city = rnd.randrange(len(_CITIES[country]))
            self.companies.append((name, f"{domain}.{_TLD[country]}", country, city))

    # ----------------------------------------------------------------- people

    def _zipf(self, items: list[str]) -> str:
        # Rank r is picked with weight 1/(r + 4): a few names are common (the first of a
        # list of 50 is taken about 8% of the time, as common as "Smith" or "Maria" get).
        weights = self._cumulative.get(id(items))
        if weights is None:
            weights = self._cumulative[id(items)] = list(
                itertools.accumulate(1.0 / (rank + 4) for rank in range(1, len(items) + 1))
            )
        return self.random.choices(items, cum_weights=weights)[0]

    def _surname(self, country: str) -> str:
        if self.random.random() < 0.55:
            return self._zipf(self.common_last[country])
        return self.random.choice(self.tail_last[country])

    def _digits(self, count: int) -> str:
        return "".join(str(self.random.randrange(10)) for _ in range(count))

    def _phone(self, country: str, mobile: bool) -> tuple[str, str]:
        """(calling code, national significant number)."""
        code, _, land, mobiles, land_length, mobile_length = _PHONES[country]
        prefix = self.random.choice(mobiles if mobile else land)
        rest = (mobile_length if mobile else land_length) - len(prefix)
        first = str(self.random.randrange(2, 10))
        return code, prefix + first + self._digits(rest - 1)

    def _postcode(self, pattern: str) -> str:
        letters = "ABDEFGHJLNPQRSTUWXYZ"
        return "".join(
            str(self.random.randrange(10))
            if ch == "#"
            else self.random.choice(letters)
            if ch == "@"
            else ch
            for ch in pattern
        )

    def person(self) -> Record:
        rnd = self.random
        country = rnd.choices(self.countries, self.country_weights)[0]
        first = self._zipf(self.first[country])
        last = self._surname(country)
        company = None
        if rnd.random() < 0.65:
            for _ in range(3):
                candidate = rnd.choice(self.companies)
                if candidate[2] == country:
                    company = candidate
                    break
        if company is not None:
            city_index = company[3] if rnd.random() < 0.8 else rnd.randrange(len(_CITIES[country]))
        else:
            city_index = rnd.randrange(len(_CITIES[country]))
        city, pattern = _CITIES[country][city_index]
        emails = []
        f, l_ = _slug(first), _slug(last)
        if company is not None and rnd.random() < 0.85:
            style = rnd.randrange(4)
            local = (
                f"{f}.{l_}",
                f"{f[0]}{l_}",
                f"{f}.{l_[0]}{rnd.randrange(10, 99)}",
                f"{f}_{l_}",
            )[style]
            emails.append(self._unique_email(local, company[1]))
        if not emails or rnd.random() < 0.3:
            local = rnd.choice((f"{f}.{l_}", f"{f}{l_}", f"{f[0]}.{l_}", f"{l_}.{f}"))
            if rnd.random() < 0.6:
                local += str(rnd.randrange(1, 99))
            emails.append(self._unique_email(local, rnd.choice(_FREE_MAIL[country])))
        phones = []
        if rnd.random() < 0.85:
            phones.append(self._phone(country, mobile=rnd.random() < 0.6))
        if rnd.random() < 0.2:
            phones.append(self._phone(country, mobile=True))
        return {
            "first_name": first,
            "last_name": last,
            "emails": emails,
            "phones": phones,
            "company": company[0] if company else None,
            "city": city if rnd.random() < 0.85 else None,
            "postal_code": self._postcode(pattern) if rnd.random() < 0.75 else None,
            "country": country,
        }

    def _unique_email(self, local: str, domain: str) -> str:
        # Unique by mailbox, not by spelling: at Gmail "ann.lee" and "annlee" are one inbox.
        address = f"{local}@{domain}"
        while _digest(email_match_key(address)) in self.used_emails:
            address = f"{local}{self.random.randrange(100, 10_000)}@{domain}"
        self.used_emails.add(_digest(email_match_key(address)))
        return address

    def relative(self, of: Record) -> Record:
        """Someone else in the same household: surname, landline and address shared."""
        rnd = self.random
        country = of["country"]
        first = self._zipf(self.first[country])
        while first == of["first_name"]:
            first = rnd.choice(self.first[country])
        local = f"{_slug(first)}.{_slug(of['last_name'])}{rnd.randrange(1, 99)}"
        phones = list(of["phones"][:1]) or [self._phone(country, mobile=False)]
        return {
            **of,
            "first_name": first,
            "emails": [self._unique_email(local, rnd.choice(_FREE_MAIL[country]))],
            "phones": phones,
            "company": None,
        }

    # ----------------------------------------------------------------- rendering

    def _format_phone(self, phone: tuple[str, str], country: str, style: int) -> str:
        code, number = phone
        trunk = _PHONES[country][1]
        if style == 0:
            return f"+{code}{number}"
        if style == 1:
            return f"+{code} {number[:3]} {number[3:6]} {number[6:]}"
        if style == 2:
            return f"00{code} {number}"
        national = trunk + number
        if country == "US":
            return f"({number[:3]}) {number[3:6]}-{number[6:]}"
        separator = ("-", " ", ".")[style % 3]
        groups = [national[i : i + 3] for i in range(0, len(national), 3)]
        return separator.join(groups)

    def render(self, person: Record) -> Record:
        """The record as first entered: tidy formats, country as a code or a name."""
        country = person["country"]
        return {
            "first_name": person["first_name"],
            "last_name": person["last_name"],
            "emails": list(person["emails"]),
            "phones": [self._format_phone(p, country, 1) for p in person["phones"]],
            "company": person["company"],
            "city": person["city"],
            "postal_code": person["postal_code"],
            "country": country if self.random.random() < 0.7 else _COUNTRY_NAMES[country][2],
        }

    # ----------------------------------------------------------------- damage

    def _typo(self, text: str) -> str:
        rnd = self.random
        if len(text) < 3:
            return text
        i = rnd.randrange(1, len(text) - 1)
        kind = rnd.randrange(4)
        letter = rnd.choice("abcdefghiklmnoprstuvy")
        if kind == 0:
            return text[:i] + text[i + 1 :]
        if kind == 1:
            return text[:i] + letter + text[i:]
        if kind == 2:
            return text[:i] + letter + text[i + 1 :]
        return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]

    def duplicate(self, person: Record) -> Record:
        """Another entry of the same person, damaged the way CRM data gets damaged."""
        rnd = self.random
        country = person["country"]
        first, last = person["first_name"], person["last_name"]
        if rnd.random() < 0.15:
            first = self._typo(first)
        if rnd.random() < 0.15:
            last = self._typo(last)
        if rnd.random() < 0.08:
            first = first[0] + ("." if rnd.random() < 0.5 else "")
        if (not first.isascii() or not last.isascii()) and rnd.random() < 0.4:
            fold = _german_ascii if country == "DE" and rnd.random() < 0.5 else _ascii
            first, last = fold(first), fold(last)
        case = rnd.random()
        if case < 0.1:
            first, last = first.upper(), last.upper()
        elif case < 0.2:
            first, last = first.lower(), last.lower()
        if rnd.random() < 0.06:
            first, last = last, first
        if rnd.random() < 0.05:
            first = f" {first}  "

        emails = list(person["emails"])
        roll = rnd.random()
        if roll < 0.12:
            emails = [self._typo_email(emails[0]), *emails[1:]]
        elif roll < 0.27:
            emails = []
        elif roll < 0.40:
            local = f"{_slug(person['first_name'])}{_slug(person['last_name'])}{rnd.randrange(100)}"
            emails = [self._unique_email(local, rnd.choice(_FREE_MAIL[country]))]
        elif roll < 0.55:
            emails = [e.upper() if rnd.random() < 0.5 else e.capitalize() for e in emails]
        elif roll < 0.62 and emails[0].endswith("@gmail.com"):
            local, _, _domain = emails[0].partition("@")
            emails = [f"{local}+crm@googlemail.com", *emails[1:]]
        if len(emails) > 1 and rnd.random() < 0.5:
            emails = emails[::-1]

        phones = list(person["phones"])
        roll = rnd.random()
        rendered: list[str] = []
        if roll < 0.2:
            phones = []
        elif roll < 0.25 and phones:
            code, number = phones[0]
            i = rnd.randrange(3, len(number))
            number = number[:i] + str((int(number[i]) + 1) % 10) + number[i + 1 :]
            phones = [(code, number), *phones[1:]]
        elif roll < 0.33:
            phones = [self._phone(country, mobile=True)]
        rendered = [self._format_phone(p, country, rnd.randrange(6)) for p in phones]

        company = person["company"]
        if company is not None:
            roll = rnd.random()
            if roll < 0.25:
                company = None
            elif roll < 0.4:
                company = company.rsplit(" ", 1)[0]
            elif roll < 0.5:
                company = company.upper()
        city = person["city"]
        if city is not None and rnd.random() < 0.3:
            city = None if rnd.random() < 0.8 else self._typo(city)
        postal = person["postal_code"]
        if postal is not None and rnd.random() < 0.35:
            postal = None if rnd.random() < 0.7 else postal.replace(" ", "").lower()
        roll = rnd.random()
        country_text: str | None = rnd.choice(_COUNTRY_NAMES[country])
        if roll < 0.2:
            country_text = None
        return {
            "first_name": first,
            "last_name": last,
            "emails": emails,
            "phones": rendered,
            "company": company,
            "city": city,
            "postal_code": postal,
            "country": country_text,
        }

    def _typo_email(self, email: str) -> str:
        local, _, domain = email.partition("@")
        return f"{self._typo(local)}@{domain}"


def generate(
    size: int, *, seed: int = 0, duplicate_rate: float = 0.10, household_rate: float = 0.02
) -> Iterator[Record]:
    """Yield ``size`` contact records; about ``duplicate_rate`` of them are duplicates.

    Each record has ``id`` (``"r0"``, ``"r1"``, ...) and ``entity_id`` (the person it
    describes); the same ``seed`` always gives the same records. Duplicates refer to a
    person met earlier in the stream (a bounded pool of recent people, so memory stays
    flat for millions of records); some people are duplicated more than once.
    """
    generator = _Generator(seed, size)
    rnd = generator.random
    pool: list[tuple[int, Record]] = []
    pool_size = 20_000
    people = 0
    for index in range(size):
        roll = rnd.random()
        if pool and roll < duplicate_rate:
            entity, person = pool[rnd.randrange(len(pool))]
            record = generator.duplicate(person)
        else:
            if pool and roll < duplicate_rate + household_rate:
                person = generator.relative(pool[rnd.randrange(len(pool))][1])
            else:
                person = generator.person()
            entity = people
            people += 1
            record = generator.render(person)
            if len(pool) < pool_size:
                pool.append((entity, person))
            else:
                pool[rnd.randrange(pool_size)] = (entity, person)
        record["id"] = f"r{index}"
        record["entity_id"] = entity
        yield record


def true_pairs(entity_ids: list[int]) -> int:
    """The number of duplicate pairs among records with these entity ids."""
    counts: dict[int, int] = {}
    for entity in entity_ids:
        counts[entity] = counts.get(entity, 0) + 1
    return sum(n * (n - 1) // 2 for n in counts.values())
