//! The report's words: one plain sentence per goal, for people who do not
//! read p-values. The figures come from [`lamed_stats`]; only their
//! wording lives here.

use lamed_stats::GoalAnalysis;

/// One plain-language sentence summarising a goal, for people who do not
/// read p-values, e.g. "blue beats red on checkout: 97% chance, not yet
/// significant; about 3,100 more participants needed".
///
/// A sample-ratio mismatch is reported first and instead of a winner,
/// because it invalidates the comparison.
pub fn for_analysis(goal: &str, analysis: &GoalAnalysis) -> String {
    let Some(control) = analysis.variants.get(analysis.control) else {
        return format!("{goal}: no variants");
    };
    if let Some(srm) = analysis.srm.as_ref().filter(|s| s.mismatch) {
        return format!(
            "{goal}: participants do not match the configured split (p = {}); \
             check assignment and tracking before reading results",
            format_p(srm.test.p_value)
        );
    }
    let leader = analysis
        .variants
        .iter()
        .filter_map(|v| v.comparison.map(|c| (v, c)))
        .max_by(|a, b| {
            a.1.chance_to_beat_control
                .total_cmp(&b.1.chance_to_beat_control)
        });
    let Some((leader, comparison)) = leader else {
        return format!(
            "{goal}: only {} is running, nothing to compare",
            control.label
        );
    };
    if control.trials == 0 || leader.trials == 0 {
        return format!("{goal}: waiting for participants in every variant");
    }
    let chance = comparison.chance_to_beat_control;
    let mut text = if chance >= 0.5 {
        format!(
            "{} beats {} on {goal}: {} chance",
            leader.label,
            control.label,
            format_percent(chance)
        )
    } else {
        format!(
            "{} leads on {goal}: {} has a {} chance to beat it",
            control.label,
            leader.label,
            format_percent(chance)
        )
    };
    // "Significant" without qualification only when the always-valid
    // sequential test agrees, since people look at the results every day.
    let always_valid = comparison.sequential.is_some_and(|s| s.significant);
    match comparison.adjusted_p_value {
        Some(p) if comparison.significant && always_valid => {
            text.push_str(&format!(", significant (p = {})", format_p(p)));
        }
        Some(p) if comparison.significant => text.push_str(&format!(
            ", significant for a fixed sample (p = {}) but not yet under repeated checking",
            format_p(p)
        )),
        Some(_) => text.push_str(", not yet significant"),
        None => text.push_str(", no test possible yet"),
    }
    if let Some(plan) = analysis.sample_size.filter(|_| !always_valid) {
        if plan.additional_total > 0 {
            text.push_str(&format!(
                "; about {} more participants needed",
                format_count(round_significant(plan.additional_total))
            ));
        }
    }
    text
}

/// The verdict of a goal whose completions outnumber its participants, so
/// that it has no conversion rate to analyse.
pub fn events_not_conversions(goal: &str) -> String {
    format!("{goal}: counted as events, not conversions")
}

/// The verdict of a goal whose counts the statistics refused.
pub fn cannot_be_analysed(goal: &str) -> String {
    format!("{goal}: cannot be analysed")
}

/// A probability as a whole percentage that never claims certainty.
fn format_percent(p: f64) -> String {
    let pct = (p * 100.0).round();
    if p > 0.99 && pct >= 100.0 {
        ">99%".to_owned()
    } else if p < 0.01 && pct <= 0.0 {
        "<1%".to_owned()
    } else {
        format!("{pct:.0}%")
    }
}

/// A p-value to three decimals, never printed as zero.
fn format_p(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}

/// Rounds to two significant figures: the plan is an estimate.
fn round_significant(n: u64) -> u64 {
    let mut scale = 1;
    while n / scale >= 100 {
        scale *= 10;
    }
    (n + scale / 2) / scale * scale
}

/// Formats with comma thousands separators ("3,100").
fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamed_stats::{analyze, Options, VariantCounts};

    /// The verdict reads as the brief's example.
    #[test]
    fn verdict_reads_plainly() {
        let variants = [
            VariantCounts::new("red", 10_000, 500),
            VariantCounts::new("blue", 10_000, 560),
        ];
        let analysis = analyze(&variants, 0, None, &Options::default()).unwrap();
        let text = for_analysis("checkout", &analysis);
        assert!(
            text.starts_with("blue beats red on checkout: 97% chance, not yet significant; about "),
            "{text}"
        );
        assert!(text.ends_with(" more participants needed"), "{text}");

        let one = analyze(&variants[..1], 0, None, &Options::default()).unwrap();
        assert_eq!(
            for_analysis("checkout", &one),
            "checkout: only red is running, nothing to compare"
        );

        let skewed = [
            VariantCounts::new("red", 10_000, 500),
            VariantCounts::new("blue", 10_600, 560),
        ];
        let analysis = analyze(&skewed, 0, None, &Options::default()).unwrap();
        assert!(for_analysis("checkout", &analysis).contains("do not match the configured split"));
    }

    /// Counts are rounded to two significant figures with separators.
    #[test]
    fn counts_format_for_people() {
        assert_eq!(format_count(round_significant(3_137)), "3,100");
        assert_eq!(format_count(round_significant(87)), "87");
        assert_eq!(format_count(round_significant(123_456)), "120,000");
        assert_eq!(format_count(round_significant(995)), "1,000");
        assert_eq!(format_percent(0.9996), ">99%");
        assert_eq!(format_percent(0.0001), "<1%");
        assert_eq!(format_percent(0.97083), "97%");
    }
}
