"""The console's words in English and German: one catalogue, chosen per request.

A plain dictionary rather than gettext catalogues: a few dozen phrases, two languages,
and a test can hold both languages to the same keys. The language comes from the
session's switch if the user chose one, else from ``Accept-Language``; English when
neither names a language we have.
"""

from __future__ import annotations

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"

CATALOGUE: dict[str, tuple[str, str]] = {
    # key: (English, German)
    "title": ("Gateway console", "Gateway-Konsole"),
    "skip": ("Skip to content", "Zum Inhalt springen"),
    "language": ("Language", "Sprache"),
    "nav": ("Main navigation", "Hauptnavigation"),
    "central": ("Central authority", "Zentralstelle"),
    "members": ("Members and nodes", "Mitglieder und Knoten"),
    "requests": ("Registration requests", "Registrierungsanträge"),
    "groups": ("Global groups", "Globale Gruppen"),
    "configuration": ("Configuration versions", "Konfigurationsversionen"),
    "audit_trail": ("Audit trail", "Prüfprotokoll"),
    "auditor": ("Verify an audit bundle", "Prüfpaket verifizieren"),
    "sign_in": ("Sign in", "Anmelden"),
    "sign_out": ("Sign out", "Abmelden"),
    "signed_in_as": ("Signed in as", "Angemeldet als"),
    "role": ("Role", "Rolle"),
    "api_key_central": ("API key of the central authority", "API-Schlüssel der Zentralstelle"),
    "api_key_node": ("API key of the node", "API-Schlüssel des Knotens"),
    "sign_in_node": ("Sign in to the node instead", "Stattdessen am Knoten anmelden"),
    "sign_in_central": (
        "Sign in to the central authority instead",
        "Stattdessen an der Zentralstelle anmelden",
    ),
    "api_key_hint": (
        "The key is kept on the console's server for this session only, never in a page "
        "or a URL. What you may do is what its role may do.",
        "Der Schlüssel bleibt nur für diese Sitzung auf dem Server der Konsole, nie in "
        "einer Seite oder URL. Sie dürfen, was seine Rolle darf.",
    ),
    "sign_in_intro_central": (
        "Sign in with an API key of the central authority.",
        "Melden Sie sich mit einem API-Schlüssel der Zentralstelle an.",
    ),
    "sign_in_intro_node": (
        "Sign in with an API key of the node's management API.",
        "Melden Sie sich mit einem API-Schlüssel der Verwaltungs-API des Knotens an.",
    ),
    "node_console": ("Node", "Knoten"),
    "diagnostics": ("Diagnostics", "Diagnose"),
    "certificates": ("Certificates", "Zertifikate"),
    "services": ("Services and access rights", "Dienste und Zugriffsrechte"),
    "maintenance": ("Maintenance mode", "Wartungsmodus"),
    "node_audit": ("Admin audit trail", "Verwaltungsprotokoll"),
    "traffic": ("Traffic", "Verkehr"),
    "ready": ("Ready", "Bereit"),
    "not_ready": ("Not ready", "Nicht bereit"),
    "check": ("Check", "Prüfung"),
    "detail": ("Detail", "Einzelheiten"),
    "ok": ("OK", "OK"),
    "failing": ("failing", "gestört"),
    "globalconf": ("Global configuration", "Globale Konfiguration"),
    "valid_until": ("Valid until", "Gültig bis"),
    "age_seconds": ("Age (s)", "Alter (s)"),
    "ocsp": ("OCSP status", "OCSP-Status"),
    "timestamping": ("Timestamping", "Zeitstempel"),
    "pending_entries": ("Entries waiting for a time stamp", "Einträge ohne Zeitstempel"),
    "log_queue": ("Log writer queue", "Warteschlange des Protokolls"),
    "peers": ("Peer nodes", "Partnerknoten"),
    "reachable": ("Reachable", "Erreichbar"),
    "owner": ("Owner", "Inhaber"),
    "subject": ("Subject", "Antragsteller"),
    "issuer": ("Issuer", "Aussteller"),
    "not_after": ("Valid until", "Gültig bis"),
    "days_left": ("Days left", "Tage übrig"),
    "connection_type": ("Connection type", "Verbindungsart"),
    "service": ("Service", "Dienst"),
    "url": ("URL", "URL"),
    "endpoints": ("Endpoints", "Endpunkte"),
    "access_rights": ("Access rights", "Zugriffsrechte"),
    "subject_kind": ("Granted to", "Gewährt an"),
    "subject_id": ("Client, global group or local group", "Client, globale oder lokale Gruppe"),
    "client_kind": ("client", "Client"),
    "group_kind": ("global group", "globale Gruppe"),
    "local_group_kind": ("local group", "lokale Gruppe"),
    "methods": ("Methods (optional, comma-separated)", "Methoden (optional, mit Komma)"),
    "paths": ("Paths (optional, comma-separated)", "Pfade (optional, mit Komma)"),
    "all_endpoints": ("all endpoints", "alle Endpunkte"),
    "grant": ("Grant", "Gewähren"),
    "revoke": ("Revoke", "Entziehen"),
    "granted_msg": ("Access granted", "Zugriff gewährt"),
    "added_msg": ("Added", "Hinzugefügt"),
    "removed_msg": ("Removed", "Entfernt"),
    "imported_msg": ("Certificate imported", "Zertifikat importiert"),
    "add": ("Add", "Hinzufügen"),
    "remove": ("Remove", "Entfernen"),
    "add_subsystem": ("Add a subsystem", "Subsystem hinzufügen"),
    "change_connection": ("Change", "Ändern"),
    "connection_changed_msg": ("Connection type changed", "Verbindungsart geändert"),
    "is_certificates": (
        "Information-system certificates (https)",
        "Zertifikate der Fachverfahren (https)",
    ),
    "is_certificate_file": ("Certificate (PEM)", "Zertifikat (PEM)"),
    "registered_msg": ("Certificate registered", "Zertifikat registriert"),
    "enable": ("Enable", "Aktivieren"),
    "disable": ("Disable", "Deaktivieren"),
    "enabled_msg": ("Service enabled", "Dienst aktiviert"),
    "disabled_msg": ("Service disabled", "Dienst deaktiviert"),
    "refresh_description": (
        "Refresh from the OpenAPI document",
        "Aus dem OpenAPI-Dokument aktualisieren",
    ),
    "refreshed_msg": ("Service description refreshed", "Dienstbeschreibung aktualisiert"),
    "method": ("Method", "Methode"),
    "path": ("Path", "Pfad"),
    "add_endpoint": ("Add endpoint", "Endpunkt hinzufügen"),
    "import_service": (
        "Add a service from its registry's OpenAPI document",
        "Dienst aus dem OpenAPI-Dokument des Registers hinzufügen",
    ),
    "service_id": ("Service identifier", "Dienstkennung"),
    "openapi_url": ("OpenAPI document URL", "URL des OpenAPI-Dokuments"),
    "local_groups": ("Local groups", "Lokale Gruppen"),
    "add_group": ("Add a local group", "Lokale Gruppe anlegen"),
    "member": ("Member (client subsystem)", "Mitglied (Client-Subsystem)"),
    "add_member": ("Add member", "Mitglied hinzufügen"),
    "no_groups": ("No local group.", "Keine lokale Gruppe."),
    "make_csr": ("Make a certificate signing request", "Zertifikatsantrag (CSR) erstellen"),
    "csr_owner": (
        "Owner: the node (authentication) or a member (signing)",
        "Inhaber: der Knoten (Authentisierung) oder ein Mitglied (Signatur)",
    ),
    "new_key": ("For a new key", "Für einen neuen Schlüssel"),
    "download_csr": ("Download the CSR", "CSR herunterladen"),
    "upload_certificate": ("Upload an issued certificate", "Ausgestelltes Zertifikat hochladen"),
    "certificate_file": ("Certificate (PEM)", "Zertifikat (PEM)"),
    "upload": ("Upload", "Hochladen"),
    "log_browser": ("Message log", "Nachrichtenprotokoll"),
    "log_intro": (
        "Search the node's message log. Bodies are personal data: the search shows none, "
        "and the bundle with bodies is offered only to the roles that may see them.",
        "Das Nachrichtenprotokoll des Knotens durchsuchen. Nachrichteninhalte sind "
        "personenbezogene Daten: die Suche zeigt keine, das Paket mit Inhalten gibt es nur "
        "für die Rollen, die sie sehen dürfen.",
    ),
    "xroad_id": ("X-Road-Id", "X-Road-Id"),
    "issue": ("Case number (X-Road-Issue)", "Aktenzeichen (X-Road-Issue)"),
    "until": ("Until", "Bis"),
    "search": ("Search", "Suchen"),
    "no_entries": ("No entry found.", "Kein Eintrag gefunden."),
    "more_results": ("More results", "Weitere Ergebnisse"),
    "logged_at": ("Logged at", "Protokolliert"),
    "bundle": ("Proof bundle", "Nachweispaket"),
    "with_bodies": ("with bodies", "mit Inhalten"),
    "revoked_msg": ("Access revoked", "Zugriff entzogen"),
    "no_rights": ("No access right.", "Kein Zugriffsrecht."),
    "maintenance_state": ("State", "Zustand"),
    "maintenance_enabled": (
        "In maintenance: new exchanges are refused",
        "In Wartung: neue Anfragen werden abgelehnt",
    ),
    "maintenance_disabled": ("In service", "In Betrieb"),
    "since": ("Since", "Seit"),
    "in_flight": ("Exchanges in flight", "Laufende Anfragen"),
    "enter_maintenance": ("Enter maintenance mode", "Wartungsmodus einschalten"),
    "leave_maintenance": ("Leave maintenance mode", "Wartungsmodus ausschalten"),
    "maintenance_on": ("Maintenance mode entered", "Wartungsmodus eingeschaltet"),
    "maintenance_off": ("Maintenance mode left", "Wartungsmodus ausgeschaltet"),
    "target": ("Target", "Ziel"),
    "entry": ("Log entry", "Protokolleintrag"),
    "hour": ("Hour (UTC)", "Stunde (UTC)"),
    "succeeded": ("Succeeded", "Erfolgreich"),
    "failed": ("Failed", "Fehlgeschlagen"),
    "traffic_intro": (
        "Exchanges of the last hours, from the node's operational records.",
        "Anfragen der letzten Stunden, aus den Betriebsdaten des Knotens.",
    ),
    "error_codes": ("Error codes", "Fehlercodes"),
    "by_service": ("Per service", "Je Dienst"),
    "count": ("Count", "Anzahl"),
    "node_signed_in": ("Node", "Knoten"),
    "id": ("Identifier", "Kennung"),
    "name": ("Name", "Name"),
    "subsystems": ("Subsystems", "Subsysteme"),
    "nodes": ("Nodes", "Knoten"),
    "address": ("Address", "Adresse"),
    "enabled": ("Enabled", "Aktiv"),
    "clients": ("Clients", "Clients"),
    "auth_certs": (
        "Authentication certificates (SHA-256)",
        "Authentisierungszertifikate (SHA-256)",
    ),
    "yes": ("yes", "ja"),
    "no": ("no", "nein"),
    "none": ("none", "keine"),
    "kind": ("Kind", "Art"),
    "status": ("Status", "Status"),
    "node": ("Node", "Knoten"),
    "client": ("Client", "Client"),
    "created": ("Created", "Erstellt"),
    "decided": ("Decided", "Entschieden"),
    "reason": ("Reason", "Begründung"),
    "actions": ("Actions", "Aktionen"),
    "approve": ("Approve", "Genehmigen"),
    "reject": ("Reject", "Ablehnen"),
    "reject_reason": ("Reason for rejecting", "Grund der Ablehnung"),
    "pending": ("Pending", "Offen"),
    "all_requests": ("All requests", "Alle Anträge"),
    "no_pending": ("No request is pending.", "Kein Antrag ist offen."),
    "may_not_decide": (
        "Your role may not approve or reject requests.",
        "Ihre Rolle darf Anträge nicht genehmigen oder ablehnen.",
    ),
    "approved_msg": ("Request approved", "Antrag genehmigt"),
    "rejected_msg": ("Request rejected", "Antrag abgelehnt"),
    "refused": ("Refused", "Abgelehnt"),
    "description": ("Description", "Beschreibung"),
    "group_members": ("Members", "Mitglieder"),
    "serial": ("Serial", "Seriennummer"),
    "generated": ("Generated", "Erzeugt"),
    "targets_version": ("TUF targets version", "TUF-Targets-Version"),
    "expires": ("Expires", "Läuft ab"),
    "document_sha256": ("Document SHA-256", "Dokument SHA-256"),
    "root": ("TUF root", "TUF-Root"),
    "root_version": ("Root version", "Root-Version"),
    "root_fingerprint": (
        "Root fingerprint (SHA-256, pinned by every anchor)",
        "Root-Fingerabdruck (SHA-256, in jedem Anker festgelegt)",
    ),
    "timestamp_expires": ("Timestamp expires", "Zeitstempel läuft ab"),
    "instance": ("Instance", "Instanz"),
    "at": ("Time", "Zeit"),
    "actor": ("Actor", "Handelnder"),
    "action": ("Action", "Aktion"),
    "object": ("Object", "Objekt"),
    "change": ("Change", "Änderung"),
    "bundle_file": ("Audit bundle (.jsonl)", "Prüfpaket (.jsonl)"),
    "anchor_file": ("Auditor's anchor (anchor.json)", "Anker des Prüfers (anchor.json)"),
    "verify": ("Verify", "Verifizieren"),
    "auditor_intro": (
        "The bundle is verified here, offline, by the same verifier as "
        "`gateway audit verify`; the report is what that command prints.",
        "Das Paket wird hier offline von demselben Verifizierer wie "
        "`gateway audit verify` geprüft; der Bericht ist, was dieser Befehl ausgibt.",
    ),
    "verified": ("The bundle verifies.", "Das Paket ist gültig."),
    "not_verified": ("The bundle does not verify.", "Das Paket ist ungültig."),
    "first_bad_piece": ("First bad piece", "Erstes fehlerhaftes Stück"),
    "report": ("Report", "Bericht"),
    "error": ("Error", "Fehler"),
    "code": ("Code", "Code"),
    "back": ("Back to the start page", "Zurück zur Startseite"),
    "start_intro": (
        "Pages over the management APIs: what you may do is what your API key's role may do.",
        "Seiten über den Verwaltungs-APIs: Sie dürfen, was die Rolle Ihres API-Schlüssels darf.",
    ),
}


def negotiate(accept_language: str | None) -> str:
    """The first language of ``Accept-Language`` (by quality, then order) that the
    catalogue has, else English."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def translate(key: str, language: str) -> str:
    """The phrase for ``key`` in ``language``; a missing key is a bug, so it raises."""
    english, german = CATALOGUE[key]
    return german if language == "de" else english
