//! `tusk job run <builtin> ARGS`: the example jobs Hadoop ships
//! (wordcount, grep, sort, and the TeraSort suite), as job definitions
//! over the engine's built-in functions.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tusk_client::Client;
use tusk_mapreduce::{InputFormat, JobSpec, OutputFormat, Partitioner, Program};

use super::defines;
use super::streaming::conf_reduces;

/// Flags of `tusk job run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Job configuration, KEY=VALUE (repeatable; -Dk=v or -D k=v).
    #[arg(short = 'D', long = "define", value_name = "KEY=VALUE", global = true)]
    define: Vec<String>,
    /// Number of reduce tasks (wordcount, sort, terasort; default 1 or
    /// mapreduce.job.reduces).
    #[arg(long, global = true)]
    reduces: Option<u32>,
    /// Number of map tasks of teragen (default 2 or mapreduce.job.maps).
    #[arg(long, global = true)]
    maps: Option<u32>,
    #[command(subcommand)]
    job: Builtin,
}

/// The built-in jobs.
#[derive(Debug, Clone, Subcommand)]
pub enum Builtin {
    /// Count the words of text files: `word<TAB>count` lines.
    Wordcount { input: String, output: String },
    /// Count the matches of a regular expression, most frequent first: `count<TAB>match`.
    Grep { input: String, output: String, regex: String },
    /// Sort lines by their key (the text up to the first tab), globally over the reducers.
    Sort { input: String, output: String },
    /// Generate ROWS 100-byte records in the gensort layout (suffixes k, m, b, t: thousands).
    Teragen { rows: String, output: String },
    /// Sort 100-byte records by their 10-byte keys (sampled range partitioner).
    Terasort { input: String, output: String },
    /// Check that sorted records are in order; writes a report (`error` lines, checksum, rows).
    Teravalidate { input: String, report: String },
}

impl RunArgs {
    pub fn builtin(&self) -> &Builtin {
        &self.job
    }
}

fn builtin(name: &str, args: &[&str]) -> Program {
    Program::Builtin { name: name.to_string(), args: args.iter().map(|a| a.to_string()).collect() }
}

/// The job of `args`, with a hash partitioner where `terasort`/`sort` will
/// need a sampled total order (see [`needs_sampling`]); `resolve` makes DFS
/// paths absolute.
pub fn build_spec(args: &RunArgs, resolve: &dyn Fn(&str) -> String) -> anyhow::Result<JobSpec> {
    let conf = defines(&args.define)?;
    let reduces = || -> anyhow::Result<u32> {
        match args.reduces {
            Some(n) => Ok(n),
            None => Ok(conf_reduces(&conf)?.unwrap_or(1)),
        }
    };
    let fixed = |what: &str, n: u32| -> anyhow::Result<u32> {
        match args.reduces {
            Some(r) if r != n => bail!("{what} runs with {n} reducer(s), not --reduces {r}"),
            _ => Ok(n),
        }
    };
    let mut spec = match &args.job {
        Builtin::Wordcount { input, output } => wordcount_spec(resolve(input), resolve(output), reduces()?),
        Builtin::Grep { input, output, regex } => JobSpec {
            name: "grep".into(),
            inputs: vec![resolve(input)],
            mapper: builtin("grep", &[regex]),
            combiner: Some(builtin("sum", &[])),
            reducer: builtin("grep_reduce", &[]),
            reduces: fixed("grep", 1)?,
            output: resolve(output),
            ..JobSpec::default()
        },
        Builtin::Sort { input, output } => JobSpec {
            name: "sort".into(),
            inputs: vec![resolve(input)],
            input_format: InputFormat::KeyValueText,
            reduces: reduces()?,
            output: resolve(output),
            ..JobSpec::default()
        },
        Builtin::Teragen { rows, output } => {
            let maps = match (args.maps, conf.get("mapreduce.job.maps")) {
                (Some(m), _) => m,
                (None, Some(m)) => m.trim().parse().with_context(|| format!("mapreduce.job.maps={m}: not a number"))?,
                (None, None) => 2,
            };
            if maps == 0 {
                bail!("teragen needs at least one map (--maps)");
            }
            fixed("teragen", 0)?;
            teragen_spec(parse_rows(rows)?, maps, resolve(output))
        }
        Builtin::Terasort { input, output } => terasort_spec(resolve(input), resolve(output), reduces()?),
        Builtin::Teravalidate { input, report } => {
            fixed("teravalidate", 1)?;
            teravalidate_spec(resolve(input), resolve(report))
        }
    };
    if let Some(name) = conf.get("mapreduce.job.name") {
        spec.name = name.clone();
    }
    // `-D` settings over the job's own.
    spec.conf.extend(conf);
    Ok(spec)
}

/// wordcount: built-in `wordcount` map, `sum` combiner and reducer.
pub fn wordcount_spec(input: String, output: String, reduces: u32) -> JobSpec {
    JobSpec {
        name: "wordcount".into(),
        inputs: vec![input],
        mapper: builtin("wordcount", &[]),
        combiner: Some(builtin("sum", &[])),
        reducer: builtin("sum", &[]),
        reduces,
        output,
        ..JobSpec::default()
    }
}

/// teragen: `rows` generated records from `maps` map tasks, no reducers.
pub fn teragen_spec(rows: u64, maps: u32, output: String) -> JobSpec {
    JobSpec {
        name: "teragen".into(),
        input_format: InputFormat::Range { rows, maps },
        mapper: builtin("teragen", &[]),
        reduces: 0,
        output,
        output_format: OutputFormat::Raw,
        ..JobSpec::default()
    }
}

/// terasort: identity over 100-byte records (a total order partitioner is
/// added by [`sample_total_order`] when `reduces > 1`).
/// Its output is written with one replica (`dfs.replication=1`, as
/// Hadoop's TeraSort does by default); `-D dfs.replication=N` overrides.
pub fn terasort_spec(input: String, output: String, reduces: u32) -> JobSpec {
    JobSpec {
        name: "terasort".into(),
        inputs: vec![input],
        input_format: InputFormat::Tera,
        reduces,
        output,
        output_format: OutputFormat::Raw,
        conf: [(tusk_mapreduce::output::REPLICATION_KEY.to_string(), "1".to_string())].into(),
        ..JobSpec::default()
    }
}

/// teravalidate: one map per file, one reducer writing the report.
pub fn teravalidate_spec(input: String, report: String) -> JobSpec {
    JobSpec {
        name: "teravalidate".into(),
        inputs: vec![input],
        input_format: InputFormat::WholeFileTera,
        mapper: builtin("teravalidate", &[]),
        reducer: builtin("teravalidate_reduce", &[]),
        reduces: 1,
        output: report,
        ..JobSpec::default()
    }
}

/// Whether the job needs sampled split points for a total order over its
/// reducers (sort and terasort with more than one reducer).
pub fn needs_sampling(b: &Builtin, spec: &JobSpec) -> bool {
    matches!(b, Builtin::Sort { .. } | Builtin::Terasort { .. }) && spec.reduces > 1
}

/// Samples the input (as TeraSort's sampler does) and makes the job's
/// partitioner a total order over its reducers.
pub async fn sample_total_order(client: &Client, spec: &mut JobSpec) -> anyhow::Result<()> {
    let points = tusk_mapreduce::sample::split_points(client, spec, spec.reduces)
        .await
        .context("sampling the input for split points")?;
    spec.partitioner = Partitioner::TotalOrder { split_points: points.iter().map(|k| hex(k)).collect() };
    Ok(())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A row count: digits with an optional k/m/b/t suffix (thousand, million,
/// billion, trillion), as Hadoop's TeraGen reads it.
pub fn parse_rows(text: &str) -> anyhow::Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1_000u64),
        Some((i, 'm')) => (&t[..i], 1_000_000),
        Some((i, 'b')) => (&t[..i], 1_000_000_000),
        Some((i, 't')) => (&t[..i], 1_000_000_000_000),
        _ => (t.as_str(), 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .with_context(|| format!("rows '{text}': expected a number, optionally with k, m, b or t"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn spec(args: &[&str]) -> anyhow::Result<JobSpec> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))?;
        build_spec(&cli.run, &|p: &str| if p.starts_with('/') { p.to_string() } else { format!("/user/u/{p}") })
    }

    #[test]
    fn wordcount_sums_words_with_a_combiner() {
        let s = spec(&["wordcount", "in", "/out"]).unwrap();
        assert_eq!(s.inputs, ["/user/u/in"]);
        assert_eq!(s.output, "/out");
        assert_eq!(s.mapper, builtin("wordcount", &[]));
        assert_eq!(s.combiner, Some(builtin("sum", &[])));
        assert_eq!(s.reducer, builtin("sum", &[]));
        assert_eq!((s.reduces, s.name.as_str()), (1, "wordcount"));
        assert_eq!((s.input_format, s.output_format), (InputFormat::Text, OutputFormat::Text));
        // Options before or after the job name, -D both ways.
        let s = spec(&["--reduces", "3", "wordcount", "-Dmapreduce.job.name=wc", "in", "out", "-D", "a=b"]).unwrap();
        assert_eq!((s.reduces, s.name.as_str()), (3, "wc"));
        assert_eq!(s.conf.get("a").map(String::as_str), Some("b"));
        assert_eq!(spec(&["wordcount", "-D", "mapreduce.job.reduces=4", "i", "o"]).unwrap().reduces, 4);
    }

    #[test]
    fn grep_has_one_reducer_and_passes_the_regex() {
        let s = spec(&["grep", "/in", "/out", "a+b"]).unwrap();
        assert_eq!(s.mapper, builtin("grep", &["a+b"]));
        assert_eq!(s.reducer, builtin("grep_reduce", &[]));
        assert_eq!(s.combiner, Some(builtin("sum", &[])));
        assert_eq!(s.reduces, 1);
        assert!(spec(&["grep", "/in", "/out", "x", "--reduces", "2"]).unwrap_err().to_string().contains("--reduces 2"));
    }

    #[test]
    fn teragen_is_map_only_over_a_range() {
        let s = spec(&["teragen", "10k", "/gen"]).unwrap();
        assert_eq!(s.input_format, InputFormat::Range { rows: 10_000, maps: 2 });
        assert!(s.inputs.is_empty());
        assert_eq!((s.reduces, s.output_format.clone()), (0, OutputFormat::Raw));
        assert_eq!(s.mapper, builtin("teragen", &[]));
        let s = spec(&["teragen", "--maps", "5", "100", "/gen"]).unwrap();
        assert_eq!(s.input_format, InputFormat::Range { rows: 100, maps: 5 });
        assert!(spec(&["teragen", "--maps", "0", "100", "/gen"]).is_err());
        assert!(spec(&["teragen", "lots", "/gen"]).unwrap_err().to_string().contains("lots"));
    }

    #[test]
    fn terasort_sort_and_teravalidate() {
        let s = spec(&["terasort", "/gen", "/sorted", "--reduces", "4"]).unwrap();
        assert_eq!((s.input_format.clone(), s.output_format.clone()), (InputFormat::Tera, OutputFormat::Raw));
        assert_eq!((s.mapper.clone(), s.reducer.clone(), s.reduces), (Program::Identity, Program::Identity, 4));
        assert!(needs_sampling(&Builtin::Terasort { input: String::new(), output: String::new() }, &s));
        assert_eq!(s.conf.get("dfs.replication").map(String::as_str), Some("1"));
        let three = spec(&["terasort", "/gen", "/sorted", "-D", "dfs.replication=3"]).unwrap();
        assert_eq!(three.conf.get("dfs.replication").map(String::as_str), Some("3"));
        let one = spec(&["terasort", "/gen", "/sorted"]).unwrap();
        assert_eq!(one.reduces, 1);
        assert!(!needs_sampling(&Builtin::Terasort { input: String::new(), output: String::new() }, &one));
        let s = spec(&["sort", "/in", "/out", "--reduces", "2"]).unwrap();
        assert_eq!(s.input_format, InputFormat::KeyValueText);
        assert_eq!(s.output_format, OutputFormat::Text);
        let s = spec(&["teravalidate", "/sorted", "/report"]).unwrap();
        assert_eq!(s.input_format, InputFormat::WholeFileTera);
        assert_eq!(
            (s.mapper.clone(), s.reducer.clone()),
            (builtin("teravalidate", &[]), builtin("teravalidate_reduce", &[]))
        );
        assert_eq!((s.reduces, s.output.as_str()), (1, "/report"));
    }

    #[test]
    fn rows_suffixes_and_hex() {
        assert_eq!(parse_rows("42").unwrap(), 42);
        assert_eq!(parse_rows("3K").unwrap(), 3_000);
        assert_eq!(parse_rows("2m").unwrap(), 2_000_000);
        assert_eq!(parse_rows("1b").unwrap(), 1_000_000_000);
        for bad in ["", "k", "1.5m", "-1", "99999999999t"] {
            assert!(parse_rows(bad).is_err(), "{bad}");
        }
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
