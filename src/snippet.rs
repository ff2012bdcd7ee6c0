//! What `lamed serve` prints on start: where to send events, the API key,
//! and an AlephBet snippet ready to paste into a page.

use crate::config::ApiKeySource;
use crate::registry::ExperimentRecord;
use crate::store::Durability;

/// The AlephBet build the snippet loads (the current release, from a CDN).
pub const ALEPHBET_SCRIPT_URL: &str =
    "https://cdn.jsdelivr.net/npm/alephbet@0.27.0/dist/alephbet.min.js";

/// Marks the line before the snippet, so tools can cut it out of the output.
pub const SNIPPET_START: &str = "----- AlephBet snippet: paste into your page -----";
/// Marks the line after the snippet.
pub const SNIPPET_END: &str = "----- end of snippet -----";

/// The built-in dashboard's URL under a server's base URL (the route
/// table's `/dashboard`).
pub fn dashboard_url(base_url: &str) -> String {
    format!("{base_url}/dashboard")
}

/// A page fragment that runs one experiment against `track_url`.
pub fn alephbet_snippet(track_url: &str, namespace: &str) -> String {
    let track_url = js_string(track_url);
    let namespace = js_string(namespace);
    format!(
        r#"<script src="{ALEPHBET_SCRIPT_URL}"></script>
<script>
  // AlephbetAdapter sends what LamedAdapter sends, and re-sends the events
  // queued while the server was unreachable on the next page load.
  // (alephbet 0.27.0's LamedAdapter reads its queue under the wrong name,
  // so its queued events wait until the same page tracks again.)
  var tracking = new AlephBet.AlephbetAdapter({track_url}, {namespace});
  var experiment = new AlephBet.Experiment({{
    name: "my first experiment",
    tracking_adapter: tracking,
    variants: {{
      red: {{ activate: function () {{ /* show the red version */ }} }},
      blue: {{ activate: function () {{ /* show the blue version */ }} }}
    }}
  }});
  var goal = new AlephBet.Goal("checkout");
  experiment.add_goal(goal);
  // call goal.complete() when the visitor reaches the goal
</script>"#
    )
}

/// The start banner. The API key is printed only when it was generated
/// just now (its owner has no other way to learn it); a configured or
/// stored key is named by where it is, so logs of stdout never hold it.
/// With the embedded store (`durability` given), it says what a power cut
/// costs, so that nobody learns it from one.
pub fn banner(
    base_url: &str,
    namespace: &str,
    api_key: &str,
    key_source: &ApiKeySource,
    durability: Option<Durability>,
) -> String {
    let key_line = match key_source {
        ApiKeySource::Configured => {
            "from the configuration (--api-key, LAMED_API_KEY or config.json)".to_owned()
        }
        ApiKeySource::Stored(path) => format!("stored in {}", path.display()),
        ApiKeySource::File(path) => format!("read from {}", path.display()),
        ApiKeySource::Generated(path) => {
            format!("{api_key} (generated now, stored in {})", path.display())
        }
    };
    let power_cut_line = durability.map_or_else(String::new, |mode| {
        format!(
            "  a power cut loses: {} (--fsync={mode})\n",
            mode.power_cut_cost()
        )
    });
    format!(
        "lamed is listening on {base_url}\n\
         \x20 tracking URL:    {base_url}/track\n\
         \x20 experiments URL: {base_url}/experiments (header X-Api-Key)\n\
         \x20 dashboard URL:   {} (asks for the API key)\n\
         \x20 API key:         {key_line}\n\
         \x20 test event:      {}\n\
         {power_cut_line}\
         \n{SNIPPET_START}\n{}\n{SNIPPET_END}\n",
        dashboard_url(base_url),
        test_event_command(base_url),
        alephbet_snippet(&format!("{base_url}/track"), namespace)
    )
}

/// A curl command that counts one event, sent as a browser (curl's own
/// User-Agent is ignored as a bot's); a second run counts nothing.
pub fn test_event_command(base_url: &str) -> String {
    format!(
        "curl -A '{}' '{base_url}/track?experiment=hello&variant=a&event=participate&uuid=first-test'",
        crate::bots::TEST_EVENT_USER_AGENT
    )
}

/// A page fragment for an adaptive experiment: it reads the current
/// period's weights from `base_url`, gives them to the variants, then
/// builds the experiment. A failed read leaves AlephBet's equal weights,
/// and a returning visitor keeps the variant AlephBet stored for them: the
/// weights decide only new visitors' variants.
pub fn adaptive_snippet(base_url: &str, record: &ExperimentRecord) -> String {
    let weights_path = format!(
        "/api/experiments/{}/weights?namespace={}",
        crate::client::path_segment(&record.name),
        crate::client::alephbet_encode(&record.namespace)
    );
    let variants: Vec<String> = record
        .variants
        .iter()
        .map(|v| {
            format!(
                "    {}: {{ activate: function () {{ /* show this version */ }} }}",
                js_string(&v.name)
            )
        })
        .collect();
    let goal = record
        .adaptive
        .as_ref()
        .map_or("checkout", |a| a.goal.as_str());
    format!(
        r#"<script src="{ALEPHBET_SCRIPT_URL}"></script>
<script>
  var base = {base};
  var tracking = new AlephBet.AlephbetAdapter(base + "/track", {namespace});
  var variants = {{
{variants}
  }};
  // This period's weights (cacheable until the period ends). A returning
  // visitor keeps the variant AlephBet stored for them; the weights only
  // decide which variant a new visitor sees.
  fetch(base + {weights_path})
    .then(function (r) {{ return r.ok ? r.json() : {{ weights: {{}} }}; }})
    .catch(function () {{ return {{ weights: {{}} }}; }})
    .then(function (answer) {{
      Object.keys(variants).forEach(function (name) {{
        if (name in answer.weights) variants[name].weight = answer.weights[name];
      }});
      var experiment = new AlephBet.Experiment({{
        name: {name},
        tracking_adapter: tracking,
        variants: variants
      }});
      window.goal = new AlephBet.Goal({goal});
      experiment.add_goal(window.goal);
      // call window.goal.complete() when the visitor reaches the goal
    }});
</script>"#,
        base = js_string(base_url.trim_end_matches('/')),
        namespace = js_string(&record.namespace),
        variants = variants.join(",\n"),
        weights_path = js_string(&weights_path),
        name = js_string(&record.name),
        goal = js_string(goal),
    )
}

/// A JavaScript string literal (JSON strings are valid JavaScript).
fn js_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snippet names the adapter, the URL and the namespace.
    #[test]
    fn snippet_points_at_track_url() {
        let snippet = alephbet_snippet("http://h:1/track", "shop");
        assert!(snippet.contains(r#"new AlephBet.AlephbetAdapter("http://h:1/track", "shop")"#));
        assert!(snippet.starts_with("<script src="));
    }

    /// Only a key generated just now is printed; otherwise the banner says
    /// where the key is.
    #[test]
    fn banner_prints_only_a_generated_key() {
        let key = "secret-key-0123456789";
        let path = std::path::PathBuf::from("/d/api_key");
        let configured = banner("http://h:1", "n", key, &ApiKeySource::Configured, None);
        let stored = banner(
            "http://h:1",
            "n",
            key,
            &ApiKeySource::Stored(path.clone()),
            None,
        );
        let generated = banner("http://h:1", "n", key, &ApiKeySource::Generated(path), None);
        assert!(!configured.contains(key), "{configured}");
        assert!(configured.contains("LAMED_API_KEY"), "{configured}");
        assert!(!stored.contains(key), "{stored}");
        assert!(
            stored.contains("API key:         stored in /d/api_key"),
            "{stored}"
        );
        assert!(
            generated.contains(&format!("API key:         {key} (generated now")),
            "{generated}"
        );
    }

    /// The banner names the dashboard under the base URL.
    #[test]
    fn banner_shows_the_dashboard() {
        let banner = banner(
            "https://ab.example.com",
            "n",
            "k",
            &ApiKeySource::Configured,
            None,
        );
        assert!(
            banner.contains("\n  dashboard URL:   https://ab.example.com/dashboard "),
            "{banner}"
        );
        assert!(!banner.contains("power cut"), "Redis: {banner}");
    }

    /// With the embedded store, the banner says what a power cut costs in
    /// the mode it runs with.
    #[test]
    fn banner_states_what_a_power_cut_costs() {
        let banner = |mode| {
            banner(
                "http://h:1",
                "n",
                "k",
                &ApiKeySource::Configured,
                Some(mode),
            )
        };
        assert!(banner(Durability::Second)
            .contains("\n  a power cut loses: at most the last second of events answered 200"));
        assert!(banner(Durability::Commit).contains("nothing answered 200"));
        assert!(banner(Durability::None).contains("since the last checkpoint"));
    }
}
