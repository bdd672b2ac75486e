//! `seal bench`'s results: per phase the runs' median, min and max time and peak memory, and
//! per step what ran in each phase; as a table that fits 80 columns, or as JSON.

use serde_json::{json, Value};

use super::measure::RunResult;

/// One phase's measured runs.
pub struct PhaseReport {
    /// `cold`, `noop`, `touch1`, `change1`.
    pub phase: &'static str,
    pub runs: Vec<RunResult>,
}

/// Everything `seal bench` prints.
pub struct Report {
    pub context: String,
    pub kubefile: String,
    pub runs: u32,
    /// The file touch1 and change1 edit, relative to the context.
    pub edited: String,
    /// Base images copied from the user's store into the scratch one.
    pub seeded: Vec<String>,
    pub phases: Vec<PhaseReport>,
}

impl PhaseReport {
    fn seconds(&self) -> Vec<f64> {
        self.runs.iter().map(|r| r.seconds).collect()
    }

    fn peak_rss_kib(&self) -> u64 {
        self.runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0)
    }

    /// For `step`: how many runs executed it, and the median of those runs' times.
    fn step(&self, step: &str) -> (usize, usize, Option<f64>) {
        let mut seen = 0;
        let mut times = Vec::new();
        for run in &self.runs {
            for s in run.steps.iter().filter(|s| s.name == step) {
                seen += 1;
                times.extend(s.elapsed);
            }
        }
        let median = (!times.is_empty()).then(|| median(&times));
        (times.len(), seen, median)
    }

    /// Steps executed per run: (fewest, most).
    fn executed(&self) -> (usize, usize) {
        let counts: Vec<usize> = self
            .runs
            .iter()
            .map(|r| r.steps.iter().filter(|s| s.elapsed.is_some()).count())
            .collect();
        (
            counts.iter().copied().min().unwrap_or(0),
            counts.iter().copied().max().unwrap_or(0),
        )
    }
}

impl Report {
    /// Step names in order of first appearance over every phase.
    fn steps(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for phase in &self.phases {
            for run in &phase.runs {
                for step in &run.steps {
                    if !names.contains(&step.name) {
                        names.push(step.name.clone());
                    }
                }
            }
        }
        names
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let steps = self.steps();
        let phases: Vec<Value> = self
            .phases
            .iter()
            .map(|p| {
                let seconds = p.seconds();
                let per_step: Vec<Value> = steps
                    .iter()
                    .map(|s| {
                        let (executed, seen, median) = p.step(s);
                        json!({
                            "step": s,
                            "executed": executed,
                            "cached": seen - executed,
                            "median_s": median,
                        })
                    })
                    .collect();
                json!({
                    "phase": p.phase,
                    "runs_s": seconds,
                    "median_s": median(&seconds),
                    "min_s": seconds.iter().copied().fold(f64::INFINITY, f64::min),
                    "max_s": seconds.iter().copied().fold(0.0, f64::max),
                    "peak_rss_kib": p.peak_rss_kib(),
                    "steps": per_step,
                })
            })
            .collect();
        json!({
            "context": self.context,
            "kubefile": self.kubefile,
            "runs": self.runs,
            "edited": self.edited,
            "seeded_images": self.seeded,
            "phases": phases,
        })
    }

    /// The report as a table for people, no line wider than `width` (at least 60).
    pub fn table(&self, width: usize) -> String {
        let width = width.max(60);
        let mut header = vec![
            format!(
                "seal bench {} ({}): {} run{} per phase",
                self.context,
                self.kubefile,
                self.runs,
                if self.runs == 1 { "" } else { "s" }
            ),
            "touch1 updates the mtime of, change1 appends a comment line to:".to_string(),
            format!("  {}", self.edited),
        ];
        if !self.seeded.is_empty() {
            header.push(format!(
                "base images copied from your store: {}",
                self.seeded.join(", ")
            ));
        }
        let mut out = String::new();
        for line in header {
            out.push_str(&console::truncate_str(&line, width, "…"));
            out.push('\n');
        }
        let steps = self.steps();
        out.push_str(&format!(
            "\n{:<8}{:>10}{:>10}{:>10}{:>11}  steps run\n",
            "phase", "median", "min", "max", "peak RSS"
        ));
        for p in &self.phases {
            let seconds = p.seconds();
            let (fewest, most) = p.executed();
            let ran = if fewest == most {
                format!("{most} of {}", steps.len())
            } else {
                format!("{fewest}-{most} of {}", steps.len())
            };
            out.push_str(&format!(
                "{:<8}{:>10}{:>10}{:>10}{:>11}  {ran}\n",
                p.phase,
                duration(median(&seconds)),
                duration(seconds.iter().copied().fold(f64::INFINITY, f64::min)),
                duration(seconds.iter().copied().fold(0.0, f64::max)),
                mebibytes(p.peak_rss_kib()),
            ));
        }
        let cell = 9;
        let name_width = width - cell * self.phases.len();
        out.push_str(&format!(
            "\n{:<name_width$}",
            "step (median time when it ran)"
        ));
        for p in &self.phases {
            out.push_str(&format!("{:>cell$}", p.phase));
        }
        out.push('\n');
        for step in &steps {
            let name = console::truncate_str(step, name_width - 1, "…");
            out.push_str(&format!("{:<name_width$}", name));
            for p in &self.phases {
                let (executed, seen, median) = p.step(step);
                let text = match median {
                    None => "cached".to_string(),
                    Some(_) if executed < seen => format!("ran {executed}/{seen}"),
                    Some(t) => duration(t),
                };
                out.push_str(&format!("{text:>cell$}"));
            }
            out.push('\n');
        }
        out
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1}ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2}s")
    }
}

fn mebibytes(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::super::measure::StepRun;
    use super::*;

    fn run(seconds: f64, steps: &[(&str, Option<f64>)]) -> RunResult {
        RunResult {
            seconds,
            peak_rss_kib: 20 * 1024,
            steps: steps
                .iter()
                .map(|(n, e)| StepRun {
                    name: n.to_string(),
                    elapsed: *e,
                })
                .collect(),
        }
    }

    #[test]
    fn medians_and_a_table_that_fits_80_columns() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let long = "[2/3] COPY a-very-long-directory-name/with/many/parts and/another/destination";
        let report = Report {
            context: "a/context/with/a/very/long/path/that/would/not/fit/on/one/line/of/eighty"
                .into(),
            kubefile: "Kubefile".into(),
            runs: 2,
            edited: "dir2/f".into(),
            seeded: vec![],
            phases: vec![
                PhaseReport {
                    phase: "cold",
                    runs: vec![
                        run(
                            1.5,
                            &[("[1/3] FROM scratch", Some(0.001)), (long, Some(0.7))],
                        ),
                        run(
                            1.7,
                            &[("[1/3] FROM scratch", Some(0.001)), (long, Some(0.9))],
                        ),
                    ],
                },
                PhaseReport {
                    phase: "change1",
                    runs: vec![
                        run(0.2, &[("[1/3] FROM scratch", None), (long, Some(0.1))]),
                        run(0.1, &[("[1/3] FROM scratch", None), (long, None)]),
                    ],
                },
            ],
        };
        let table = report.table(80);
        for line in table.lines() {
            assert!(console::measure_text_width(line) <= 80, "too wide: {line}");
        }
        let cold = table.lines().find(|l| l.starts_with("cold ")).unwrap();
        assert!(
            cold.contains(" 1.60s ") && cold.ends_with("2 of 2"),
            "{cold}"
        );
        assert!(table.contains("0-1 of 2"), "{table}");
        assert!(table.contains("ran 1/2"), "{table}");
        let from = table.lines().find(|l| l.starts_with("[1/3]")).unwrap();
        assert!(from.ends_with("1.0ms   cached"), "{from}");
        let json = report.json();
        assert_eq!(json["phases"][0]["median_s"], 1.6);
        assert_eq!(json["phases"][1]["steps"][1]["executed"], 1);
    }
}
