// The kind of a failed delivery (issue 5), from its RFC 3463 code and the words around it: the
// address is bad (hard), the failure temporary (soft), the sender's problem (policy), or a complaint.
// One place for the rule, used by the bounce classifier, the provider webhooks and the deliverer.

export type BounceKind = 'hard' | 'soft' | 'policy' | 'complaint';
// RFC 3463: class, subject 0–7, detail (Yahoo's "4.16.55.1" is not one)
export const ENHANCED = /\b([245])\.([0-7])\.(\d{1,3})\b/;
// Yahoo writes "554: delivery error", others "550-", "550 ". Not the milliseconds of a logged time
// ("17:22:39.512: RCPT To:<…>", MDaemon's transcript).
export const REPLY = /(?<![.:])\b([45]\d\d)[\s:-]/;
// Phrases, in the languages MTAs write in, for what the code alone does not say.
export const POLICY =
  /spam|blocked|block ?list|blacklist|deny ?list|(?<!not )listed (on|in|at)|is listed|reputation|policy|dmarc|\bspf\b|dkim|authentication|unauthenticated|not authori[sz]ed|\bdenied\b|banned|refused by|content rejected|virus|relay(ing)? (access )?(denied|not permitted)|not permitted to relay|spamhaus|barracuda|\(bl\)|bloqu[ée]|ind[ée]sirable|blockiert|bloccat|bloqueado|спам|垃圾邮件|迷惑メール/i;
export const FULL =
  /mailbox (is )?full|mail ?folder (is )?full|inbox (is )?full|quota|over ?quota|insufficient (system )?storage|exceeded storage|storage (space|limit)|out of (storage|space)|mailbox.{0,80}exceed|postfach (ist )?voll|speicherplatz|bo[iî]te (aux lettres |de r[ée]ception |mail )?(est )?pleine|casella (di posta )?(è )?piena|spazio esaurito|buz[óo]n (de correo )?(est[áa] )?lleno|caixa (postal |de correio )?(est[áa] )?cheia|skrzynka (odbiorcza )?(jest )?pe[łl]na|mailbox (is )?vol|переполнен|превышен|空间不足|邮箱已满|容量|いっぱい/i;
export const HARD =
  /user unknown|unknown user|(unknown|invalid) (local[- ]part|recipient|address|mailbox)|no such (user|mailbox|recipient|address|person|account)|does not exist|doesn'?t exist|did not exist|not exist|invalid (mailbox|recipient|address)|recipient (address )?rejected|address rejected|mailbox (unavailable|not found|disabled|inactive|does not exist)|mailbox not found|account (is |has been )?(disabled|deactivated|suspended|inactive|closed|expired|unavailable)|inactive (user|account|mailbox)|(user|recipient|address|mailbox|account) (was )?not found|not (a )?valid (mailbox|recipient|address)|doesn'?t have an? \S+ account|not listed in (the )?(\S+ )?directory|no mailbox here|unrouteable|unroutable|no mailbox|host (or domain name )?not found|invalid (domain|host)|domain (not found|does not exist|unknown)|unknown domain|no (mx|valid mx)|name or service not known|NXDOMAIN|RecipientNotFound|address not found|(couldn'?t|could not|can'?t|cannot) be found|wasn'?t found|no longer (active|valid|available|in use)|domain (is )?not reachable|has moved|recipient moved|benutzer unbekannt|unbekannte[rn]? (empf[äa]nger|benutzer|adresse)|existiert nicht|gibt es nicht|utilisateur inconnu|destinataire inconnu|adresse (inconnue|introuvable|invalide)|n'existe pas|usuario (desconocido|inexistente|no existe)|no existe|destinatario (sconosciuto|inesistente)|utente (sconosciuto|inesistente)|non esiste|gebruiker onbekend|onbekende (ontvanger|gebruiker)|bestaat niet|usu[áa]rio (desconhecido|inexistente)|n[ãa]o existe|nieznany (u[żz]ytkownik|adresat)|nie istnieje|пользователь не найден|нет такого|не существует|не найден|用户不存在|收件人不存在|不存在|宛先不明|存在しません|존재하지 않는/i;
export const SOFT =
  /temporar|try (again|later)|timed? ?out|deferred|greylist|graylist|too many (connections|messages|recipients)|rate limit|throttl|connection (refused|reset|lost)|could not connect|unable to connect|did not accept our requests? to connect|after multiple retries|delivery (time|period) expired|retry time(out)? (not reached|exceeded)|message expired|expired|too (large|big)|size (limit|exceeds)|exceeds (the )?(maximum|size)|service (is |currently |temporarily )?unavailable|insufficient|still being retried|delayed|vorübergehend|später|temporairement|ult[ée]rieurement|riprova|m[áa]s tarde|mais tarde|временно|暂时|一時的/i;
// The sender's side, whatever code came with it: lists, reputation, SPF, reverse DNS, the client.
export const BLOCKED_SENDER =
  /spamhaus|spamcop|block ?list|blacklist|deny ?list|reputation|\b(dns)?rbl\b|\bspf\b|\bptr\b|reverse dns|\brdns\b|client (host|ip)|ip name lookup|unverif[iy]able sending|sending ips?\b|ip for sending|messages from \S+ (weren'?t|were not) sent|not allowed to send|unroutable sender|sender (address |domain )?(was )?(rejected|denied|blocked|unknown|invalid|not found)|user complaints|(host|network|ip|client) (network )?not allowed|address is not verified|identit(y|ies) failed/i;
export const ACCOUNT_BLOCKED =
  /(recipient|user|destinataire)('?s)? (account|mailbox)( is| has been)? (blocked|locked|suspended|disabled)|compte du destinataire est bloqu|\btemporar(il)?y locked\b/i;
// Exim's "after MAIL FROM:<…>" and "after initial connection", Postfix's "in reply to MAIL FROM command"
export const BEFORE_RCPT =
  /after (mail from|initial connection|helo|ehlo)\b|in reply to (mail from|helo|ehlo) command|refused to talk to me/i;
// A refused service is the sending host's ("421 4.2.1 Service refused" at connection), unless it came
// after the message was sent (Orange's "in reply to end of DATA": its system, for now).
const blockedSender = (text: string) =>
  BLOCKED_SENDER.test(text) || (/service refus/i.test(text) && !/end of data/i.test(text));
// The recipient's domain takes no mail at all (RFC 7505 null MX): permanent, whatever code came with it.
// 5.7.27 is the sender's own null MX.
const NULL_MX = /null ?mx|domain( \S+)? (doesn'?t|does not) (receive|accept) (e-?)?mail(?! from)/i;
/** The first RFC 3463 enhanced status code (e.g. 5.1.1) in any of the texts, '' when none has one. */
export const enhancedCode = (...texts: (string | undefined | null)[]) => {
  for (const t of texts) {
    const m = t ? ENHANCED.exec(t) : null;
    if (m) return m[0];
  }
  return '';
};

/** RFC 3463 class and subject, refined by the diagnostic text where the code is vague. */
export function kindOf(status: string, text: string): BounceKind {
  const m = ENHANCED.exec(status);
  const cls = m?.[1];
  const sub = m ? `${m[2]}.${m[3]}` : '';
  // Refused before any recipient was named: the sender or the connection, never the address.
  if (BEFORE_RCPT.test(text))
    return (cls === '4' || REPLY.exec(text)?.[1]?.startsWith('4')) && !blockedSender(text)
      ? 'soft'
      : 'policy';
  if (NULL_MX.test(text) && sub !== '7.27' && !blockedSender(text)) return 'hard';
  if (cls === '4')
    return blockedSender(text) || (POLICY.test(text) && /block|spam|listed/i.test(text)) ? 'policy' : 'soft';
  if (cls === '5') {
    // x.7.x, and 5.1.7/5.1.8: the sender's address or rights, not the recipient's
    // "user account disabled" (RFC 3463's later 5.7.13), "the recipient account is blocked"
    if (sub === '7.13' || ACCOUNT_BLOCKED.test(text)) return 'hard';
    if (m?.[2] === '7' || sub === '1.7' || sub === '1.8') return 'policy';
    // a block list or a refused sender, whatever code the server chose (GoDaddy's 5.1.3, Cox's 5.1.0)
    if (blockedSender(text)) return 'policy';
    // "552 sorry, mailbox is over quota" under a relay's 5.1.1: the server's words win
    if (sub === '2.2' || sub === '2.3' || FULL.test(text)) return 'soft';
    if (m?.[2] === '1' || sub === '2.1') return 'hard';
    // the system, network, protocol or content: not the address's fault unless the text says so
    if (m && '3456'.includes(m[2])) return HARD.test(text) ? 'hard' : POLICY.test(text) ? 'policy' : 'soft';
  }
  // "The recipient account is blocked": the account, not the sender
  if (ACCOUNT_BLOCKED.test(text)) return 'hard';
  if (blockedSender(text) || POLICY.test(text)) return 'policy';
  if (FULL.test(text)) return 'soft';
  if (HARD.test(text)) return 'hard';
  if (SOFT.test(text)) return 'soft';
  const code = REPLY.exec(text)?.[1];
  if (code?.startsWith('4')) return 'soft';
  return 'hard';
}
