"""The words of the outbox emails, one set per language: months, number formats, the
names of line types and missed-call reasons, and every sentence (``text``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    months: tuple[str, ...]
    at: str  # between the date and the time
    decimal_point: str
    thousands: str
    euro_first: bool  # "€3.13" or "3,13 €"
    line_types: Mapping[str, str]
    reasons: Mapping[str, str]
    text: Mapping[str, str]


EN = Language(
    months=(
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    at="at",
    decimal_point=".",
    thousands=",",
    euro_first=True,
    line_types={"mobile": "mobile", "fixed": "landline", "unknown": "unknown"},
    reasons={
        "no_answer": "you did not answer",
        "busy": "your line was busy",
        "no_choice": "you answered but did not choose an option",
    },
    text={
        "refused.subject": "Your consultation request to {expert}",
        "refused.body": "Hello {client},\n\n{expert} has closed for today and cannot take"
        " your call.",
        "refused.proposal": "We propose an appointment on {when}.",
        "earnings.subject": "Your earnings for the consultation with {client}: {earnings}",
        "earnings.intro": "Hello {expert},\n\nhere is the detail of your consultation"
        " no. {id} with {client}.",
        "earnings.outro": "Thank you.",
        "start": "Start",
        "end": "End",
        "billed": "Talk time",
        "charged": "Charged time",
        "rate": "Rate",
        "price": "Client price",
        "line": "Line type",
        "transfer": "Transfer cost",
        "commission": "Commission",
        "earnings": "Your earnings",
        "note": "Note",
        "missed.subject": "You missed a call from {client}",
        "missed.body": "Hello,\n\n{client} tried to reach you (attempt {attempt}), but"
        " {reason}. The client is still waiting.\n\nTo be called now and put through to"
        " {client}, open this link:\n\n{url}\n\nThe link is valid until {expires}.",
        "lost.subject": "You missed the request from {client}",
        "lost.body": "Hello,\n\n{client} tried to reach you for the last time (attempt"
        " {attempt}), but {reason}. The request is closed: the client will not be put"
        " through to you for it.",
        "reason.other": "the call did not go through",
        "message.subject": "A message from {expert}",
        "message.intro": "Hello {client},\n\n{expert} has written to you:",
        "message.outro": "Please do not reply to this email: {expert} cannot read replies."
        " To talk to {expert}, ask for a consultation.",
        "pin_locked.subject": "Your phone menu is locked after wrong PINs",
        "pin_locked.body": "Hello {expert},\n\n{wrong} wrong PINs in a row were typed at"
        " the phone menu for your account, so it is locked until {until}.\n\nIf it was not"
        " you, someone is trying to guess your PIN: set a new one in the control panel (My"
        " consultation types), which also unlocks the menu at once. Choose at least 6"
        " digits, not a date or a repeated digit.",
        "closed.subject": "Your consultation request is closed",
        "closed.expired": "Hello {client},\n\nno expert could take your request in time,"
        " so it has expired. We are sorry: please ask again whenever you like.",
        "closed.all_refused": "Hello {client},\n\nno expert of the kind you asked for can"
        " take your request now, so it is closed. We are sorry: please ask again later.",
        "closed.client_unreachable": "Hello {client},\n\nan expert accepted your request,"
        " but we could not reach you on the phone, so it is closed. Please ask again"
        " whenever you like.",
    },
)

IT = Language(
    months=(
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ),
    at="alle",
    decimal_point=",",
    thousands=".",
    euro_first=False,
    line_types={"mobile": "cellulare", "fixed": "fisso", "unknown": "sconosciuto"},
    reasons={
        "no_answer": "non hai risposto",
        "busy": "la tua linea era occupata",
        "no_choice": "hai risposto ma non hai scelto nessuna opzione",
    },
    text={
        "refused.subject": "La tua richiesta di consulto a {expert}",
        "refused.body": "Ciao {client},\n\n{expert} ha chiuso per oggi e non può"
        " rispondere alla tua chiamata.",
        "refused.proposal": "Ti proponiamo un appuntamento il {when}.",
        "earnings.subject": "Il tuo guadagno per il consulto con {client}: {earnings}",
        "earnings.intro": "Ciao {expert},\n\necco il dettaglio del tuo consulto"
        " n. {id} con {client}.",
        "earnings.outro": "Grazie.",
        "start": "Inizio",
        "end": "Fine",
        "billed": "Durata della conversazione",
        "charged": "Tempo addebitato",
        "rate": "Tariffa",
        "price": "Prezzo per il cliente",
        "line": "Tipo di linea",
        "transfer": "Costo di trasferimento",
        "commission": "Commissione",
        "earnings": "Il tuo guadagno",
        "note": "Nota",
        "missed.subject": "Hai perso una chiamata di {client}",
        "missed.body": "Ciao,\n\n{client} ha cercato di contattarti (tentativo n. {attempt}),"
        " ma {reason}. Il cliente è ancora in attesa.\n\nPer ricevere subito la chiamata e"
        " parlare con {client}, apri questo link:\n\n{url}\n\n"
        "Il link è valido fino al {expires}.",
        "lost.subject": "Hai perso la richiesta di {client}",
        "lost.body": "Ciao,\n\n{client} ha cercato di contattarti per l'ultima volta"
        " (tentativo n. {attempt}), ma {reason}. La richiesta è chiusa: il cliente non"
        " verrà più messo in contatto con te per questa richiesta.",
        "reason.other": "la chiamata non è andata a buon fine",
        "message.subject": "Un messaggio da {expert}",
        "message.intro": "Ciao {client},\n\n{expert} ti ha scritto:",
        "message.outro": "Non rispondere a questa email: {expert} non può leggere le"
        " risposte. Per parlare con {expert}, richiedi un consulto.",
        "pin_locked.subject": "Il tuo menu telefonico è bloccato dopo PIN errati",
        "pin_locked.body": "Ciao {expert},\n\nsono stati digitati {wrong} PIN errati di"
        " seguito nel menu telefonico del tuo account, che resta bloccato fino al"
        " {until}.\n\nSe non sei stato tu, qualcuno sta cercando di indovinare il tuo PIN:"
        " impostane uno nuovo nel pannello di controllo (Le mie tipologie di consulto), che"
        " sblocca subito anche il menu. Scegli almeno 6 cifre, non una data né una cifra"
        " ripetuta.",
        "closed.subject": "La tua richiesta di consulto è chiusa",
        "closed.expired": "Ciao {client},\n\nnessun esperto ha potuto accettare la tua"
        " richiesta in tempo, quindi è scaduta. Ci dispiace: puoi richiedere un consulto"
        " quando vuoi.",
        "closed.all_refused": "Ciao {client},\n\nnessun esperto del tipo che hai chiesto"
        " può accettare la tua richiesta adesso, quindi è chiusa. Ci dispiace: riprova più"
        " tardi.",
        "closed.client_unreachable": "Ciao {client},\n\nun esperto ha accettato la tua"
        " richiesta, ma non siamo riusciti a raggiungerti al telefono, quindi è chiusa."
        " Puoi richiedere un consulto quando vuoi.",
    },
)

LANGUAGES: dict[str, Language] = {"en": EN, "it": IT}
