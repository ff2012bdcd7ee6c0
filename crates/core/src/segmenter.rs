//! The segment of a tracking request (issue 26): its device and browser
//! from the User-Agent, its country from `CloudFront-Viewer-Country` (on
//! AWS Lambda) or from a MaxMind-format database file (`geoip_db`).
//!
//! # The User-Agent rules
//!
//! `assets/uap/regexes.json` holds the browser and operating-system rules
//! of [uap-core](https://github.com/ua-parser/uap-core) (Apache-2.0, the
//! rules every ua-parser port shares), vendored unchanged with their
//! version; `scripts/update-uap-regexes.sh [VERSION]` refreshes them and
//! runs these tests. The `ua-parser` crate runs them. A parsed agent is
//! kept in an LRU cache of [`CACHE_ENTRIES`], so a repeated User-Agent
//! costs a lookup.
//!
//! The browser is uap-core's family ("Other" recorded as `other`). uap-core
//! names devices (brand, model) but no device type, so the type is read,
//! first to last, from: CloudFront's `CloudFront-Is-Tablet-Viewer`,
//! `-Mobile-`, `-Desktop-` headers (on Lambda only: anyone can send them to
//! `lamed serve`); the operating system uap-core names: iOS is a tablet
//! when the agent says `iPad`, else a phone; Android is a phone when the
//! agent says `Mobile` (Google's rule for Android browsers), else a
//! tablet; Windows, macOS, Linux and ChromeOS are desktops, unless
//! Chrome's `Sec-CH-UA-Mobile: ?1` says a phone (a reduced or desktop-mode
//! agent); phone systems (Windows Phone, KaiOS...) are phones; anything
//! else is `other`. (Chrome sends `?1` from tablets too, so the header
//! does not overrule an agent that names its device.)

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex};

use http::HeaderMap;
use lru::LruCache;
use serde::Deserialize;
use ua_parser::{os, user_agent};

use crate::bots::Visitor;
use crate::segments::{Dimension, Segment, OTHER};

/// Parsed User-Agents kept: a site's visitors send a few hundred distinct
/// agents, which fit many times over; each entry is a few hundred bytes.
pub const CACHE_ENTRIES: usize = 4096;

/// The vendored rules (module doc).
const RULES: &str = include_str!("../../../assets/uap/regexes.json");

/// What the vendored file holds.
#[derive(Deserialize)]
struct Rules<'a> {
    version: String,
    user_agent_parsers: Vec<user_agent::Parser<'a>>,
    os_parsers: Vec<os::Parser<'a>>,
}

/// uap-core's rules, compiled once, on first use.
struct Parsers {
    browsers: user_agent::Extractor<'static>,
    systems: os::Extractor<'static>,
}

static PARSERS: LazyLock<Parsers> = LazyLock::new(|| {
    // Startup invariants: the file is vendored and checked by the tests.
    let rules: Rules<'static> =
        serde_json::from_str(RULES).expect("assets/uap/regexes.json parses");
    let browsers = user_agent::Builder::new()
        .push_all(rules.user_agent_parsers)
        .expect("uap-core's browser rules compile")
        .build()
        .expect("uap-core's browser rules build");
    let systems = os::Builder::new()
        .push_all(rules.os_parsers)
        .expect("uap-core's system rules compile")
        .build()
        .expect("uap-core's system rules build");
    Parsers { browsers, systems }
});

/// The version of uap-core the rules come from.
pub fn rules_version() -> String {
    serde_json::from_str::<Rules<'_>>(RULES)
        .map(|rules| rules.version)
        .unwrap_or_default()
}

/// What a User-Agent says: its device type and browser family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// desktop, mobile, tablet or other.
    pub device: &'static str,
    /// uap-core's family, `other` when unknown.
    pub browser: Arc<str>,
}

/// Parses a User-Agent with uap-core's rules (module doc), uncached.
pub fn parse_agent(user_agent: &str) -> Agent {
    let parsers = &*PARSERS;
    let browser = match parsers.browsers.extract(user_agent) {
        Some(found) if found.family != "Other" => Arc::from(&*found.family),
        _ => Arc::from(OTHER),
    };
    let system = parsers.systems.extract(user_agent);
    let device = match system.as_ref().map(|found| &*found.os) {
        Some("iOS") if user_agent.contains("iPad") => "tablet",
        Some("iOS") => "mobile",
        Some("Android") if user_agent.contains("Mobile") => "mobile",
        Some("Android") => "tablet",
        Some(
            "Windows" | "Mac OS X" | "Linux" | "Ubuntu" | "Fedora" | "Debian" | "Chrome OS"
            | "ChromeOS" | "FreeBSD" | "OpenBSD",
        ) => "desktop",
        Some(
            "Windows Phone" | "KaiOS" | "BlackBerry OS" | "Firefox OS" | "Symbian OS" | "Sailfish",
        ) => "mobile",
        _ => OTHER,
    };
    Agent { device, browser }
}

/// The segment settings, compiled once at start.
pub struct Segmenter {
    /// Which dimensions are recorded.
    dimensions: [bool; 3],
    /// Whether CloudFront's viewer headers are trusted (on Lambda only).
    cloudfront: bool,
    /// The parsed agents.
    cache: Mutex<LruCache<Box<str>, Agent>>,
    /// `geoip_db`, opened (shared with [`Segmenter::trusting_cloudfront`]'s
    /// copy).
    geoip: Option<Arc<maxminddb::Reader<Vec<u8>>>>,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter")
            .field("dimensions", &self.dimensions)
            .field("cloudfront", &self.cloudfront)
            .field("geoip", &self.geoip.is_some())
            .finish()
    }
}

/// A `geoip_db` file that cannot be read as a MaxMind-format database.
#[derive(Debug, thiserror::Error)]
#[error("geoip_db {path} is no MaxMind-format database: {reason}")]
pub struct InvalidGeoip {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// One record of a country database: MaxMind's GeoIP2/GeoLite2 shape
/// (`country.iso_code`) or ip-location-db's (`country_code`).
#[derive(Deserialize)]
struct GeoRecord<'a> {
    #[serde(borrow)]
    country: Option<GeoCountry<'a>>,
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct GeoCountry<'a> {
    iso_code: Option<&'a str>,
}

impl Segmenter {
    /// Records `dimensions`; `geoip` is the content of `geoip_db` (`path`
    /// names it in errors); `cloudfront`: trust CloudFront's viewer
    /// headers (the Lambda entry).
    ///
    /// # Errors
    ///
    /// The geoip file is no MaxMind-format database.
    pub fn new(
        dimensions: &[Dimension],
        geoip: Option<(String, Vec<u8>)>,
        cloudfront: bool,
    ) -> Result<Self, InvalidGeoip> {
        let mut on = [false; 3];
        for dimension in dimensions {
            on[dimension.index()] = true;
        }
        let geoip = match geoip {
            Some((path, bytes)) => Some(Arc::new(maxminddb::Reader::from_source(bytes).map_err(
                |err| InvalidGeoip {
                    path,
                    reason: err.to_string(),
                },
            )?)),
            None => None,
        };
        if on[Dimension::Device.index()] || on[Dimension::Browser.index()] {
            LazyLock::force(&PARSERS);
        }
        Ok(Segmenter {
            dimensions: on,
            cloudfront,
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            geoip,
        })
    }

    /// The same rules, trusting CloudFront's viewer headers or not: the
    /// Lambda entry's (behind API Gateway's CloudFront, which sets them).
    pub fn trusting_cloudfront(&self, trust: bool) -> Segmenter {
        Segmenter {
            dimensions: self.dimensions,
            cloudfront: trust,
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            geoip: self.geoip.clone(),
        }
    }

    /// Records nothing: every event's segment is empty.
    pub fn off() -> Self {
        Segmenter {
            dimensions: [false; 3],
            cloudfront: false,
            cache: Mutex::new(LruCache::new(NonZeroUsize::MIN)),
            geoip: None,
        }
    }

    /// The default: device and browser, and country when a source exists.
    pub fn default_dimensions() -> Vec<Dimension> {
        Dimension::ALL.to_vec()
    }

    /// True when no dimension is recorded.
    pub fn is_off(&self) -> bool {
        self.dimensions == [false; 3]
    }

    /// The segment of a request with these headers from `visitor`.
    pub fn segment(&self, headers: &HeaderMap, visitor: &Visitor) -> Segment {
        let mut segment = Segment::NONE;
        if self.is_off() {
            return segment;
        }
        let [device_on, browser_on, country_on] = self.dimensions;
        if device_on || browser_on {
            let agent = visitor
                .user_agent
                .as_deref()
                .map(|user_agent| self.agent(user_agent));
            if device_on {
                let device = match (self.cloudfront_device(headers), &agent) {
                    (Some(device), _) => device,
                    (None, Some(agent)) if agent.device != "desktop" && agent.device != OTHER => {
                        agent.device
                    }
                    (None, _) if mobile_hint(headers) => "mobile",
                    (None, agent) => agent.as_ref().map_or(OTHER, |agent| agent.device),
                };
                segment.set(Dimension::Device, device);
            }
            if browser_on {
                let browser = agent.as_ref().map_or(OTHER, |agent| &*agent.browser);
                segment.set(Dimension::Browser, browser);
            }
        }
        if country_on {
            if let Some(country) = self.country(headers, visitor.client_ip) {
                segment.set(Dimension::Country, &country);
            }
        }
        segment
    }

    /// The agent of a User-Agent, from the cache or parsed and cached.
    fn agent(&self, user_agent: &str) -> Agent {
        // std Mutex: held for a lookup only, never across a parse or an await.
        if let Some(agent) = self.lock().get(user_agent) {
            return agent.clone();
        }
        let agent = parse_agent(user_agent);
        self.lock().put(Box::from(user_agent), agent.clone());
        agent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Box<str>, Agent>> {
        // A panic while holding it leaves a usable cache.
        self.cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The device type CloudFront's headers state, when trusted.
    fn cloudfront_device(&self, headers: &HeaderMap) -> Option<&'static str> {
        if !self.cloudfront {
            return None;
        }
        [
            ("cloudfront-is-tablet-viewer", "tablet"),
            ("cloudfront-is-mobile-viewer", "mobile"),
            ("cloudfront-is-desktop-viewer", "desktop"),
        ]
        .into_iter()
        .find(|(header, _)| {
            headers
                .get(*header)
                .is_some_and(|v| v.as_bytes() == b"true")
        })
        .map(|(_, device)| device)
    }

    /// The visitor's country: CloudFront's header (on Lambda), else the
    /// geoip file's answer for the client address.
    fn country(&self, headers: &HeaderMap, client: Option<IpAddr>) -> Option<String> {
        if self.cloudfront {
            if let Some(code) = headers
                .get("cloudfront-viewer-country")
                .and_then(|v| v.to_str().ok())
                .and_then(country_code)
            {
                return Some(code);
            }
        }
        let reader = self.geoip.as_ref()?;
        let client = client?.to_canonical();
        if !is_public(client) {
            return None;
        }
        let record: GeoRecord<'_> = reader.lookup(client).ok()?;
        record
            .country
            .and_then(|country| country.iso_code)
            .or(record.country_code)
            .and_then(country_code)
    }
}

/// Whether an address can be a visitor's on the internet: not private,
/// loopback, link-local, shared (CGNAT), documentation or unspecified.
/// (Country databases built from registry data give such ranges the
/// registry's country: ip-location-db's answers AU for 192.168.7.7.)
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// Chrome's client hint that the browser is on a phone (or a tablet).
fn mobile_hint(headers: &HeaderMap) -> bool {
    headers
        .get("sec-ch-ua-mobile")
        .is_some_and(|v| v.as_bytes() == b"?1")
}

/// An ISO 3166 alpha-2 code, upper-cased; `None` for anything else.
fn country_code(text: &str) -> Option<String> {
    let text = text.trim();
    (text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| text.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Playwright's desktop Chrome, iPhone, iPad and Galaxy Tab S4 agents.
    pub const DESKTOP_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.33 Safari/537.36";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 12_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const GALAXY_TAB: &str = "Mozilla/5.0 (Linux; Android 8.1.0; SM-T837A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.33 Safari/537.36";
    const PIXEL: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.33 Mobile Safari/537.36";
    const FIREFOX_MAC: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0";

    fn visitor(user_agent: &str, ip: Option<&str>) -> Visitor {
        Visitor {
            user_agent: Some(user_agent.to_owned()),
            client_ip: ip.map(|ip| ip.parse().expect("address")),
        }
    }

    /// The vendored rules name the browsers and devices of the devices the
    /// browser tests emulate, and an unknown agent is "other".
    #[test]
    fn segmenter_names_common_agents() {
        for (agent, device, browser) in [
            (DESKTOP_CHROME, "desktop", "Chrome"),
            (IPHONE, "mobile", "Mobile Safari"),
            (IPAD, "tablet", "Mobile Safari"),
            (GALAXY_TAB, "tablet", "Chrome"),
            (PIXEL, "mobile", "Chrome Mobile"),
            (FIREFOX_MAC, "desktop", "Firefox"),
            ("made-up/1.0", OTHER, OTHER),
        ] {
            let parsed = parse_agent(agent);
            assert_eq!(
                (parsed.device, &*parsed.browser),
                (device, browser),
                "{agent}"
            );
        }
        assert!(!rules_version().is_empty());
    }

    /// Headers: `Sec-CH-UA-Mobile` makes a desktop agent a phone (not a
    /// tablet's agent); CloudFront's viewer
    /// headers count only when trusted; the country needs a source, and a
    /// dimension that is off has no value.
    #[test]
    fn segmenter_reads_headers_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cloudfront-is-tablet-viewer",
            "true".parse().expect("value"),
        );
        headers.insert("cloudfront-viewer-country", "de".parse().expect("value"));
        let all = Segmenter::default_dimensions();
        let server = Segmenter::new(&all, None, false).expect("segmenter");
        let segment = server.segment(&headers, &visitor(DESKTOP_CHROME, Some("192.0.2.1")));
        assert_eq!(segment.get(Dimension::Device), Some("desktop"));
        assert_eq!(segment.get(Dimension::Browser), Some("Chrome"));
        assert_eq!(segment.get(Dimension::Country), None);
        let lambda = Segmenter::new(&all, None, true).expect("segmenter");
        let segment = lambda.segment(&headers, &visitor(DESKTOP_CHROME, None));
        assert_eq!(segment.get(Dimension::Device), Some("tablet"));
        assert_eq!(segment.get(Dimension::Country), Some("DE"));
        headers.clear();
        headers.insert("sec-ch-ua-mobile", "?1".parse().expect("value"));
        let segment = server.segment(&headers, &visitor(DESKTOP_CHROME, None));
        assert_eq!(segment.get(Dimension::Device), Some("mobile"));
        let segment = server.segment(&headers, &visitor(GALAXY_TAB, None));
        assert_eq!(
            segment.get(Dimension::Device),
            Some("tablet"),
            "the agent names it"
        );
        let browser_only = Segmenter::new(&[Dimension::Browser], None, true).expect("segmenter");
        let segment = browser_only.segment(&headers, &visitor(IPHONE, None));
        assert_eq!(segment.get(Dimension::Device), None);
        assert_eq!(segment.get(Dimension::Browser), Some("Mobile Safari"));
        assert!(Segmenter::off()
            .segment(&headers, &visitor(IPHONE, None))
            .is_empty());
    }

    /// Addresses no visitor on the internet has are not looked up.
    #[test]
    fn segmenter_looks_up_public_addresses_only() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("192.168.7.7", false),
            ("10.0.0.1", false),
            ("100.64.0.1", false),
            ("203.0.113.9", false),
            ("127.0.0.1", false),
            ("2a00:1450::1", true),
            ("fd00::1", false),
            ("fe80::1", false),
            ("2001:db8::1", false),
            ("::ffff:192.168.1.1", false),
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(is_public(ip.to_canonical()), public, "{ip}");
        }
    }

    /// A file that is no MaxMind database is refused, naming the file.
    #[test]
    fn segmenter_refuses_a_bad_geoip_file() {
        let err = Segmenter::new(
            &[Dimension::Country],
            Some(("/tmp/x.mmdb".into(), b"not a database".to_vec())),
            false,
        )
        .expect_err("refused");
        assert!(err.to_string().contains("/tmp/x.mmdb"), "{err}");
    }
}
