//! Bot filtering (issue 12): tells a person's request from a crawler's, a
//! script's or a monitor's, so that experiments count people.
//!
//! A request is a bot by the first of these rules that matches:
//!
//! 1. its client address is in `ignored_networks`;
//! 2. it has no User-Agent, or a blank one (every browser sends one);
//! 3. its User-Agent matches a pattern of `bot_user_agents` (regexes,
//!    case-insensitive);
//! 4. its User-Agent matches the crawler list.
//!
//! `bot_filter: false` turns every rule off.
//!
//! # The crawler list
//!
//! `assets/bots/isbot-patterns.json` is the pattern list of the npm package
//! [isbot](https://github.com/omrilotan/isbot) (public domain), vendored
//! unchanged with its version: isbot is updated every few weeks and tested
//! against thousands of crawler and browser user agents.
//! `scripts/update-bot-patterns.sh [VERSION]` refreshes it (npm pack, then
//! node reads the package's `list`) and runs these tests. The `isbot`
//! crate was not taken: its own list has not changed since July 2022 and,
//! on npm isbot's current fixtures, misses 190 of 626 crawlers and takes 5
//! of 555 browsers for bots.
//!
//! The patterns are JavaScript regexes, read by [`to_rust`]. The regex
//! crate runs them all in one pass, each without its lookarounds (which it
//! lacks; the pattern without them matches a superset); fancy-regex then
//! confirms a hit of one of the few patterns that have lookarounds. A
//! person's request costs about 0.3 µs.
//!
//! # The client's address
//!
//! The peer is the TCP peer under `lamed serve` (`server::run` records it)
//! and API Gateway's `sourceIp` on AWS Lambda. With `trusted_proxies` = 0
//! the peer is the client and `X-Forwarded-For` is ignored: anyone can send
//! it. With N trusted proxies, each appends the address it saw, so the
//! client is the Nth entry from the right of `X-Forwarded-For` (its lines
//! read as one list); when it has fewer, the furthest hop known (the
//! leftmost entry, else the peer). An entry that is no address (`unknown`,
//! garbage) leaves the client unknown: no network rule matches it, the
//! User-Agent rules still apply.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use http::{header, HeaderMap};
use ipnet::IpNet;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

/// A desktop browser's User-Agent, which the bot rules count as a person:
/// what the banner's and the README's test events send, since curl's own
/// User-Agent is on the crawler list.
pub const TEST_EVENT_USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// The bot settings as written (`bot_filter`, `bot_user_agents`,
/// `ignored_networks`, `trusted_proxies`), before they are compiled.
#[derive(Debug, Clone, Copy)]
pub struct BotRules<'a> {
    /// `bot_filter`: whether any rule applies.
    pub enabled: bool,
    /// `bot_user_agents`: extra User-Agent regexes.
    pub user_agent_patterns: &'a [String],
    /// `ignored_networks`: CIDRs or addresses never counted.
    pub ignored_networks: &'a [String],
    /// `trusted_proxies`: proxies in front of lamed.
    pub trusted_proxies: usize,
}

/// A bot setting that cannot be compiled, named with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBotRule(String);

/// The bot rules of the settings, built once at start.
#[derive(Debug)]
pub struct BotFilter {
    /// `bot_filter`.
    enabled: bool,
    /// `bot_user_agents`, compiled.
    extra_patterns: Vec<Regex>,
    /// `ignored_networks`, parsed.
    ignored_networks: Vec<IpNet>,
    /// `trusted_proxies`.
    trusted_proxies: usize,
}

impl BotFilter {
    /// The filter the settings describe.
    ///
    /// # Errors
    ///
    /// [`InvalidBotRule`] naming the setting and the value, for a pattern
    /// that is no regex or a network that is no CIDR.
    pub fn new(rules: &BotRules<'_>) -> Result<BotFilter, InvalidBotRule> {
        let extra_patterns = rules
            .user_agent_patterns
            .iter()
            .map(|pattern| {
                RegexBuilder::new(pattern)
                    .case_insensitive(true)
                    .build()
                    .map_err(|err| {
                        InvalidBotRule(format!(
                            "bot_user_agents: '{pattern}' is not a valid regex ({})",
                            regex_problem(&err)
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let ignored_networks = rules
            .ignored_networks
            .iter()
            .map(|text| {
                parse_network(text).ok_or_else(|| {
                    InvalidBotRule(format!(
                        "ignored_networks: '{text}' is not a network; \
                         write a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or one address"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        if rules.enabled {
            // Compiled now (a few milliseconds), not on the first request.
            LazyLock::force(&CRAWLERS);
        }
        Ok(BotFilter {
            enabled: rules.enabled,
            extra_patterns,
            ignored_networks,
            trusted_proxies: rules.trusted_proxies,
        })
    }

    /// How many proxies in front of lamed append to `X-Forwarded-For`.
    pub fn trusted_proxies(&self) -> usize {
        self.trusted_proxies
    }

    /// A filter that takes every request for a person's, as
    /// `bot_filter: false` does: for tools and tests without settings.
    pub fn disabled() -> BotFilter {
        BotFilter {
            enabled: false,
            extra_patterns: Vec::new(),
            ignored_networks: Vec::new(),
            trusted_proxies: 0,
        }
    }

    /// The network of `ignored_networks` holding `ip`, for a caller that
    /// knows the address but not the user agent (Sixpack's `ip_address`
    /// without `user_agent`).
    pub fn check_address(&self, ip: IpAddr) -> Option<BotMatch<'_>> {
        if !self.enabled {
            return None;
        }
        self.ignored_networks
            .iter()
            .find(|n| n.contains(&ip))
            .map(|network| BotMatch::IgnoredNetwork(*network))
    }

    /// The rule that takes `visitor` for a bot, or `None` for a person.
    pub fn check(&self, visitor: &Visitor) -> Option<BotMatch<'_>> {
        if !self.enabled {
            return None;
        }
        if let Some(found) = visitor.client_ip.and_then(|ip| self.check_address(ip)) {
            return Some(found);
        }
        let Some(user_agent) = visitor
            .user_agent
            .as_deref()
            .filter(|ua| !ua.trim().is_empty())
        else {
            return Some(BotMatch::EmptyUserAgent);
        };
        if let Some(pattern) = self.extra_patterns.iter().find(|p| p.is_match(user_agent)) {
            return Some(BotMatch::ExtraPattern(pattern.as_str()));
        }
        CRAWLERS.find(user_agent).map(BotMatch::UserAgent)
    }
}

/// Why a request is taken for a bot: the rule that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotMatch<'a> {
    /// The client address is in this network of `ignored_networks`.
    IgnoredNetwork(IpNet),
    /// No User-Agent, or a blank one.
    EmptyUserAgent,
    /// The User-Agent matches this pattern of `bot_user_agents`.
    ExtraPattern(&'a str),
    /// The User-Agent matches this pattern of the crawler list.
    UserAgent(&'static str),
}

impl BotMatch<'_> {
    /// The rule in one word, for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            BotMatch::IgnoredNetwork(_) => "ignored_network",
            BotMatch::EmptyUserAgent => "empty_user_agent",
            BotMatch::ExtraPattern(_) => "extra_pattern",
            BotMatch::UserAgent(_) => "user_agent",
        }
    }
}

impl fmt::Display for BotMatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BotMatch::IgnoredNetwork(network) => {
                write!(f, "client address in ignored network {network}")
            }
            BotMatch::EmptyUserAgent => write!(f, "no user agent"),
            BotMatch::ExtraPattern(pattern) => {
                write!(f, "user agent matches bot_user_agents pattern '{pattern}'")
            }
            BotMatch::UserAgent(pattern) => {
                write!(f, "user agent matches crawler pattern '{pattern}'")
            }
        }
    }
}

/// Who sent a request, as far as the bot rules ask. The HTTP layer
/// extracts it from each request (`lamed_server::visitor`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visitor {
    /// The User-Agent header (invalid UTF-8 replaced), if sent.
    pub user_agent: Option<String>,
    /// The client's address, if known (module doc: "The client's address").
    pub client_ip: Option<IpAddr>,
}

impl Visitor {
    /// The visitor of a request with these headers, from `peer`, behind
    /// `trusted_proxies` proxies.
    pub fn from_headers(headers: &HeaderMap, peer: Option<IpAddr>, trusted_proxies: usize) -> Self {
        Visitor {
            user_agent: headers
                .get(header::USER_AGENT)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
            client_ip: client_ip(headers, peer.map(|ip| ip.to_canonical()), trusted_proxies),
        }
    }
}

/// The client's address: the peer, or the entry of `X-Forwarded-For` that
/// the last trusted proxy added (module doc).
fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted_proxies: usize) -> Option<IpAddr> {
    if trusted_proxies == 0 {
        return peer;
    }
    let forwarded: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|line| line.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|entry| !entry.is_empty())
        .collect();
    match forwarded.len().checked_sub(trusted_proxies) {
        Some(index) => parse_hop(forwarded[index]),
        None => forwarded.first().map_or(peer, |entry| parse_hop(entry)),
    }
}

/// One `X-Forwarded-For` entry: an address, with or without a port
/// (`192.0.2.1:443`, `[2001:db8::1]:443`, `[2001:db8::1]`).
fn parse_hop(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d.
    Some(ip.to_canonical())
}

/// A network of `ignored_networks`: a CIDR, or one address.
fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The last line of a regex error: what is wrong, without the pattern
/// drawn again above it.
fn regex_problem(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

/// The crawler list, compiled once per process. The vendored file is
/// checked by this module's tests, and [`BotFilter::new`] forces this at
/// start: a bad file stops the start, never a request.
static CRAWLERS: LazyLock<CrawlerList> = LazyLock::new(|| {
    CrawlerList::parse(include_str!("../../../assets/bots/isbot-patterns.json"))
        .unwrap_or_else(|err| panic!("the vendored crawler list does not compile: {err}"))
});

/// The part of the vendored file read here.
#[derive(Deserialize)]
struct VendoredList {
    patterns: Vec<String>,
}

/// The crawler list, compiled.
struct CrawlerList {
    /// The patterns as vendored, named in [`BotMatch::UserAgent`].
    patterns: Vec<String>,
    /// Every pattern without its lookarounds, matched in one pass.
    candidates: RegexSet,
    /// By index, the whole pattern, for those that have lookarounds.
    exact: Vec<Option<fancy_regex::Regex>>,
}

impl CrawlerList {
    /// The list of a vendored file.
    fn parse(json: &str) -> Result<CrawlerList, String> {
        let list: VendoredList = serde_json::from_str(json).map_err(|err| err.to_string())?;
        let (exact, candidates): (Vec<String>, Vec<String>) =
            list.patterns.iter().map(|p| to_rust(p)).unzip();
        let exact = exact
            .iter()
            .zip(&candidates)
            .map(|(exact, candidate)| {
                if exact == candidate {
                    return Ok(None);
                }
                fancy_regex::RegexBuilder::new(exact)
                    .case_insensitive(true)
                    .build()
                    .map(Some)
                    .map_err(|err| format!("'{exact}': {err}"))
            })
            .collect::<Result<_, _>>()?;
        let candidates = RegexSetBuilder::new(&candidates)
            .case_insensitive(true)
            .build()
            .map_err(|err| err.to_string())?;
        Ok(CrawlerList {
            patterns: list.patterns,
            candidates,
            exact,
        })
    }

    /// The first pattern that matches `user_agent`.
    fn find(&self, user_agent: &str) -> Option<&str> {
        self.candidates
            .matches(user_agent)
            .into_iter()
            .find(|&index| match &self.exact[index] {
                None => true,
                // Past fancy-regex's backtracking limit: no match.
                Some(exact) => exact.is_match(user_agent).unwrap_or(false),
            })
            .map(|index| self.patterns[index].as_str())
    }
}

/// A JavaScript pattern of the crawler list in the regex crates' syntax:
/// `(exact, candidate)`, the candidate being the pattern without its
/// lookaround groups (`(?=`, `(?!`, `(?<=`, `(?<!`), which matches
/// wherever the pattern does since a lookaround only narrows a match.
///
/// The one JavaScript-only form the list uses is rewritten: in `[...]`, a
/// `-` beside a class escape (`[\w-.]`) is a literal in JavaScript and an
/// error here, so it is escaped. Another one would fail this module's
/// tests after an update, and belongs here.
fn to_rust(javascript: &str) -> (String, String) {
    let is_class_escape = |c: char| matches!(c, 'd' | 'D' | 'w' | 'W' | 's' | 'S');
    let (mut exact, mut candidate) = (String::new(), String::new());
    let mut chars = javascript.chars();
    let mut in_class = false;
    let mut after_class_escape = false;
    // Groups open inside the lookaround being left out of the candidate.
    let mut lookaround_depth = 0usize;
    while let Some(c) = chars.next() {
        let hidden = lookaround_depth > 0;
        let mut token = c.to_string();
        let mut class_escape = false;
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    class_escape = is_class_escape(escaped);
                    token.push(escaped);
                }
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '-' if in_class => {
                let rest = chars.as_str();
                let next_is_class_escape = rest
                    .strip_prefix('\\')
                    .and_then(|escaped| escaped.chars().next())
                    .is_some_and(is_class_escape);
                if after_class_escape || next_is_class_escape {
                    token = r"\-".to_owned();
                }
            }
            '(' if !in_class => {
                let rest = chars.as_str();
                if hidden
                    || ["?=", "?!", "?<=", "?<!"]
                        .iter()
                        .any(|p| rest.starts_with(p))
                {
                    lookaround_depth += 1;
                }
            }
            ')' if !in_class && hidden => lookaround_depth -= 1,
            _ => {}
        }
        after_class_escape = in_class && class_escape;
        exact.push_str(&token);
        if !hidden && lookaround_depth == 0 {
            candidate.push_str(&token);
        }
    }
    (exact, candidate)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::{json, Value};

    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const FIREFOX: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
        (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    const ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
    const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";

    /// The filter of the bot settings in `settings` (JSON, as in
    /// `config.json`; absent ones at their defaults).
    fn build(settings: Value) -> Result<BotFilter, InvalidBotRule> {
        let strings = |key: &str| -> Vec<String> {
            serde_json::from_value(settings.get(key).cloned().unwrap_or(json!([]))).unwrap()
        };
        let (patterns, networks) = (strings("bot_user_agents"), strings("ignored_networks"));
        BotFilter::new(&BotRules {
            enabled: settings
                .get("bot_filter")
                .is_none_or(|on| on == &json!(true)),
            user_agent_patterns: &patterns,
            ignored_networks: &networks,
            trusted_proxies: settings
                .get("trusted_proxies")
                .map_or(0, |n| n.as_u64().unwrap() as usize),
        })
    }

    fn filter(settings: Value) -> BotFilter {
        build(settings).unwrap()
    }

    fn visitor(user_agent: Option<&str>, client_ip: Option<&str>) -> Visitor {
        Visitor {
            user_agent: user_agent.map(str::to_owned),
            client_ip: client_ip.map(|ip| ip.parse().unwrap()),
        }
    }

    fn kind(filter: &BotFilter, user_agent: Option<&str>, client_ip: Option<&str>) -> &'static str {
        filter
            .check(&visitor(user_agent, client_ip))
            .map_or("person", |found| found.kind())
    }

    /// Every vendored pattern compiles, and the few with lookarounds are
    /// confirmed exactly (the list still has them: else fancy-regex could
    /// go).
    #[test]
    fn the_vendored_list_compiles() {
        let list = &*CRAWLERS;
        assert!(list.patterns.len() > 100, "{}", list.patterns.len());
        let with_lookarounds = list.exact.iter().flatten().count();
        assert!((1..20).contains(&with_lookarounds), "{with_lookarounds}");
        // No candidate matches anything: fancy-regex runs only on a hit.
        assert!(
            !list.candidates.is_match(""),
            "{:?}",
            list.candidates.matches("")
        );
    }

    /// Search engines, AI crawlers, scripts and headless browsers are
    /// bots; the crawler pattern is named.
    #[test]
    fn crawlers_and_scripts_are_bots() {
        let filter = filter(json!({}));
        for user_agent in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 \
             (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; \
             +https://openai.com/gptbot)",
            "curl/8.5.0",
            "python-requests/2.32.3",
            "Go-http-client/1.1",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             HeadlessChrome/131.0.0.0 Safari/537.36",
        ] {
            let found = filter.check(&visitor(Some(user_agent), None));
            assert!(
                matches!(found, Some(BotMatch::UserAgent(_))),
                "{user_agent}: {found:?}"
            );
        }
        let found = filter.check(&visitor(Some("curl/8.5.0"), None)).unwrap();
        assert!(found
            .to_string()
            .starts_with("user agent matches crawler pattern '"));
    }

    /// Today's browsers are people, and so is Chrome's Android WebView of
    /// a Google app: a pattern with lookarounds that must not match.
    #[test]
    fn browsers_are_people() {
        let filter = filter(json!({}));
        for user_agent in [
            CHROME,
            FIREFOX,
            SAFARI,
            IPHONE,
            ANDROID,
            EDGE,
            TEST_EVENT_USER_AGENT,
        ] {
            assert_eq!(
                kind(&filter, Some(user_agent), Some("192.0.2.1")),
                "person",
                "{user_agent}"
            );
        }
        let google_app = "Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 \
            (KHTML, like Gecko) Version/4.0 Chrome/131.0.0.0 Mobile Safari/537.36 GoogleApp/15.1";
        assert!(
            CRAWLERS.candidates.is_match(google_app),
            "the candidate matches"
        );
        assert_eq!(kind(&filter, Some(google_app), None), "person");
    }

    /// No User-Agent, an empty or a blank one: a bot.
    #[test]
    fn an_empty_user_agent_is_a_bot() {
        let filter = filter(json!({}));
        for user_agent in [None, Some(""), Some("  ")] {
            assert_eq!(kind(&filter, user_agent, None), "empty_user_agent");
        }
    }

    /// bot_user_agents match case-insensitively, and are named.
    #[test]
    fn extra_patterns() {
        let filter = filter(json!({"bot_user_agents": ["^acme-monitor/", "uptime{1,2}"]}));
        let found = filter.check(&visitor(
            Some("ACME-Monitor/2.0 (+https://acme.example)"),
            None,
        ));
        assert_eq!(found, Some(BotMatch::ExtraPattern("^acme-monitor/")));
        assert_eq!(
            kind(&filter, Some(&format!("{CHROME} Uptimee")), None),
            "extra_pattern"
        );
        assert_eq!(kind(&filter, Some(CHROME), None), "person");
    }

    /// ignored_networks: IPv4 and IPv6 CIDRs and single addresses; an IPv4
    /// client seen as an IPv4-mapped IPv6 peer still matches.
    #[test]
    fn ignored_networks() {
        let filter = filter(json!({
            "ignored_networks": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
        }));
        for (ip, expected) in [
            ("10.1.2.3", "ignored_network"),
            ("11.0.0.1", "person"),
            ("2001:db8:1::1", "ignored_network"),
            ("2001:db9::1", "person"),
            ("192.0.2.7", "ignored_network"),
            ("192.0.2.8", "person"),
        ] {
            assert_eq!(kind(&filter, Some(CHROME), Some(ip)), expected, "{ip}");
        }
        let mapped =
            Visitor::from_headers(&headers(CHROME, &[]), "::ffff:10.9.9.9".parse().ok(), 0);
        assert_eq!(mapped.client_ip, "10.9.9.9".parse().ok());
        let found = filter.check(&mapped).unwrap();
        assert_eq!(
            found.to_string(),
            "client address in ignored network 10.0.0.0/8"
        );
        // The network rule comes first, even for a crawler.
        assert_eq!(
            kind(&filter, Some("curl/8"), Some("10.0.0.1")),
            "ignored_network"
        );
        // An unknown client matches no network.
        assert_eq!(kind(&filter, Some(CHROME), None), "person");
    }

    /// `bot_filter: false` takes everyone for a person.
    #[test]
    fn bot_filter_false_turns_it_off() {
        let filter = filter(json!({
            "bot_filter": false, "bot_user_agents": ["chrome"], "ignored_networks": ["0.0.0.0/0"]
        }));
        for (user_agent, ip) in [
            (Some("Googlebot/2.1"), None),
            (None, None),
            (Some(CHROME), Some("10.0.0.1")),
        ] {
            assert_eq!(kind(&filter, user_agent, ip), "person");
        }
        assert_eq!(kind(&BotFilter::disabled(), Some("curl/8"), None), "person");
    }

    /// A pattern that is no regex and a network that is no CIDR stop the
    /// configuration, naming the setting and the value.
    #[test]
    fn bad_patterns_and_networks_are_config_errors() {
        for (settings, expected) in [
            (
                json!({"bot_user_agents": ["fine", "(unclosed"]}),
                "bot_user_agents: '(unclosed' is not a valid regex (unclosed group)",
            ),
            (
                json!({"ignored_networks": ["10.0.0.0/33"]}),
                "ignored_networks: '10.0.0.0/33' is not a network",
            ),
            (
                json!({"ignored_networks": ["10.0.0.0/8", "office"]}),
                "ignored_networks: 'office' is not a network",
            ),
        ] {
            let err = build(settings).expect_err("refused").to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    fn headers(user_agent: &str, forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_str(user_agent).unwrap(),
        );
        for line in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    /// The client of `X-Forwarded-For` lines from the peer 198.51.100.1,
    /// behind `trusted` proxies.
    fn client(forwarded: &[&str], trusted: usize) -> Option<String> {
        let peer = "198.51.100.1".parse().ok();
        Visitor::from_headers(&headers(CHROME, forwarded), peer, trusted)
            .client_ip
            .map(|ip| ip.to_string())
    }

    /// 0 trusted proxies: the peer, whatever the header says; N: the Nth
    /// entry from the right, over several lines; fewer entries than
    /// proxies: the leftmost, else the peer.
    #[test]
    fn client_address_behind_trusted_proxies() {
        let chain = ["203.0.113.5, 10.0.0.1", "10.0.0.2"];
        let peer = Some("198.51.100.1".to_owned());
        assert_eq!(client(&chain, 0), peer);
        assert_eq!(client(&[], 0), peer);
        assert_eq!(client(&chain, 1).as_deref(), Some("10.0.0.2"));
        assert_eq!(client(&chain, 2).as_deref(), Some("10.0.0.1"));
        assert_eq!(client(&chain, 3).as_deref(), Some("203.0.113.5"));
        assert_eq!(client(&chain, 4).as_deref(), Some("203.0.113.5"));
        assert_eq!(client(&[], 1), peer);
        // Ports, brackets, IPv6, IPv4-mapped IPv6, blank entries.
        assert_eq!(
            client(&["203.0.113.5:4711"], 1).as_deref(),
            Some("203.0.113.5")
        );
        assert_eq!(
            client(&["[2001:db8::1]:443"], 1).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            client(&["[2001:db8::1]"], 1).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            client(&["2001:db8::1, ,"], 1).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            client(&["::ffff:192.0.2.1"], 1).as_deref(),
            Some("192.0.2.1")
        );
    }

    /// An entry that is no address leaves the client unknown rather than
    /// taking another hop for it; one elsewhere in the list is harmless.
    #[test]
    fn malformed_forwarded_entries() {
        assert_eq!(client(&["unknown"], 1), None);
        assert_eq!(client(&["203.0.113.5, garbage"], 1), None);
        assert_eq!(client(&["1.2.3.4.5"], 1), None);
        assert_eq!(client(&["203.0.113.5, 10.0.0.300"], 1), None);
        assert_eq!(
            client(&["garbage, 203.0.113.5"], 1).as_deref(),
            Some("203.0.113.5")
        );
        let mut headers = headers(CHROME, &[]);
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.\xff").unwrap(),
        );
        let visitor = Visitor::from_headers(&headers, None, 1);
        assert_eq!(visitor.client_ip, None);
        // An unknown client is still judged by its User-Agent.
        let filter = filter(json!({"ignored_networks": ["0.0.0.0/0", "::/0"]}));
        assert_eq!(filter.check(&visitor), None);
    }

    /// JavaScript patterns in Rust syntax: lookarounds, nested groups and
    /// escaped parentheses; a class dash beside a class escape.
    #[test]
    fn javascript_patterns_in_rust_syntax() {
        let cases = [
            ("(?<!lib)http", "(?<!lib)http", "http"),
            (
                "(?<! channel/|google/)google(?!(?:wv|app| pixel))",
                "(?<! channel/|google/)google(?!(?:wv|app| pixel))",
                "google",
            ),
            (r"\(\)(?=x)", r"\(\)(?=x)", r"\(\)"),
            (r"[(?=]x", r"[(?=]x", r"[(?=]x"),
            (r"(?<name>a)b", r"(?<name>a)b", r"(?<name>a)b"),
            (r"[\w\d-.]+", r"[\w\d\-.]+", r"[\w\d\-.]+"),
            (r"[a-\d]", r"[a\-\d]", r"[a\-\d]"),
            (r"[a-z]", r"[a-z]", r"[a-z]"),
        ];
        for (javascript, exact, candidate) in cases {
            assert_eq!(
                to_rust(javascript),
                (exact.to_owned(), candidate.to_owned()),
                "{javascript}"
            );
        }
    }
}
