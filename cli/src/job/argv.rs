//! Hadoop Streaming's option spelling (`-input x -numReduceTasks 2
//! -Dk=v`), turned into the `--input=x` form clap parses, before clap sees
//! the command line. Only the arguments after `tusk job [...] streaming`
//! are touched; every other command line passes through unchanged.

use std::ffi::OsString;

/// Streaming options taking a value: Hadoop's spelling, then the long flag
/// of [`StreamingArgs`](super::streaming::StreamingArgs).
const VALUE_OPTIONS: &[(&str, &str)] = &[
    ("input", "input"),
    ("output", "output"),
    ("mapper", "mapper"),
    ("combiner", "combiner"),
    ("reducer", "reducer"),
    ("file", "file"),
    ("files", "files"),
    ("numReduceTasks", "num-reduce-tasks"),
    ("cmdenv", "cmdenv"),
    ("inputformat", "inputformat"),
    ("outputformat", "outputformat"),
    ("jobconf", "define"),
    ("D", "define"),
];

/// Long flags (besides the ones above) whose value is the next argument.
const LONG_VALUE_FLAGS: &[&str] = &["num-reduce-tasks", "define", "jobtracker", "namenode"];

/// Options of `tusk job` itself that take a value (before the subcommand).
const JOB_VALUE_FLAGS: &[&str] = &["--jobtracker", "--namenode"];

/// Rewrites the arguments of `tusk job ... streaming` (see the module
/// docs); an unknown single-dash option is an error naming it.
pub fn rewrite(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(start) = streaming_args_start(&args) else {
        return Ok(args);
    };
    let mut out: Vec<OsString> = args[..start].to_vec();
    let mut rest = args[start..].iter();
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg.clone());
            continue;
        };
        if text == "--" {
            out.push(arg.clone());
            out.extend(rest.cloned());
            break;
        }
        let mut value_of = |flag: &str| -> Result<String, String> {
            let v = rest.next().ok_or_else(|| format!("option {text} needs a value"))?;
            v.to_str().map(str::to_string).ok_or_else(|| format!("option {text}: the value of {flag} is not UTF-8"))
        };
        if let Some(long) = text.strip_prefix("--") {
            // `--input x` becomes `--input=x`, so a value starting with `-`
            // (a mapper's own options) stays a value.
            let name = long.split_once('=').map_or(long, |(n, _)| n);
            let takes_value = VALUE_OPTIONS.iter().any(|(_, l)| *l == name)
                || LONG_VALUE_FLAGS.contains(&name)
                || name == "numReduceTasks";
            if takes_value && !long.contains('=') {
                let v = value_of(text)?;
                out.push(format!("--{name}={v}").into());
            } else {
                out.push(arg.clone());
            }
            continue;
        }
        let Some(short) = text.strip_prefix('-').filter(|s| !s.is_empty()) else {
            out.push(arg.clone());
            continue;
        };
        if matches!(short, "h" | "help" | "info") {
            out.push("--help".into());
            continue;
        }
        // `-Dkey=value` (attached) as well as `-D key=value`.
        if let Some(kv) = short.strip_prefix('D').filter(|kv| !kv.is_empty()) {
            out.push(format!("--define={kv}").into());
            continue;
        }
        let (name, attached) = match short.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (short, None),
        };
        let Some((_, long)) = VALUE_OPTIONS.iter().find(|(h, _)| *h == name) else {
            return Err(format!("unknown option {text} for `tusk job streaming` (known: {})", known_options()));
        };
        let v = match attached {
            Some(v) => v,
            None => value_of(long)?,
        };
        out.push(format!("--{long}={v}").into());
    }
    Ok(out)
}

/// The Hadoop-spelled options, for error messages.
fn known_options() -> String {
    VALUE_OPTIONS.iter().map(|(h, _)| format!("-{h}")).collect::<Vec<_>>().join(", ")
}

/// Index of the first argument after `streaming` in `tusk job [opts]
/// streaming ...`, if that is the command.
fn streaming_args_start(args: &[OsString]) -> Option<usize> {
    if args.get(1).and_then(|a| a.to_str()) != Some("job") {
        return None;
    }
    let mut i = 2;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        if a.starts_with('-') {
            i += if JOB_VALUE_FLAGS.contains(&a) { 2 } else { 1 };
            continue;
        }
        return (a == "streaming").then_some(i + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Vec<String>, String> {
        let args = args.iter().map(OsString::from).collect();
        rewrite(args).map(|v| v.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    fn ok(args: &[&str]) -> Vec<String> {
        run(args).unwrap()
    }

    #[test]
    fn hadoop_spelling_becomes_long_flags() {
        let got = ok(&[
            "tusk",
            "job",
            "streaming",
            "-input",
            "/a",
            "-input",
            "/b",
            "-output",
            "/o",
            "-mapper",
            "cat",
            "-reducer",
            "wc -l",
            "-combiner",
            "uniq -c",
            "-file",
            "m.py",
            "-numReduceTasks",
            "3",
            "-cmdenv",
            "K=V",
            "-inputformat",
            "TextInputFormat",
        ]);
        assert_eq!(
            got,
            [
                "tusk",
                "job",
                "streaming",
                "--input=/a",
                "--input=/b",
                "--output=/o",
                "--mapper=cat",
                "--reducer=wc -l",
                "--combiner=uniq -c",
                "--file=m.py",
                "--num-reduce-tasks=3",
                "--cmdenv=K=V",
                "--inputformat=TextInputFormat",
            ]
        );
    }

    #[test]
    fn long_spelling_passes_and_values_may_start_with_a_dash() {
        let got =
            ok(&["tusk", "job", "streaming", "--input", "/a", "--mapper", "-x", "--output=/o", "--json", "--detach"]);
        assert_eq!(got, ["tusk", "job", "streaming", "--input=/a", "--mapper=-x", "--output=/o", "--json", "--detach"]);
        // A Hadoop-spelled option's value is never taken for an option.
        assert_eq!(ok(&["tusk", "job", "streaming", "-mapper", "-input"])[3], "--mapper=-input");
        assert_eq!(ok(&["tusk", "job", "streaming", "--numReduceTasks", "2"])[3], "--numReduceTasks=2");
    }

    #[test]
    fn define_forms() {
        let got = ok(&[
            "tusk",
            "job",
            "streaming",
            "-D",
            "a.b=1",
            "-Dc.d=2",
            "--define",
            "e=3",
            "-jobconf",
            "f=4",
            "-D",
            "g=x=y",
        ]);
        assert_eq!(got[3..], ["--define=a.b=1", "--define=c.d=2", "--define=e=3", "--define=f=4", "--define=g=x=y"]);
    }

    #[test]
    fn unknown_options_and_missing_values_are_named() {
        let e = run(&["tusk", "job", "streaming", "-input", "/a", "-bogus", "x"]).unwrap_err();
        assert!(e.contains("-bogus") && e.contains("-numReduceTasks"), "{e}");
        let e = run(&["tusk", "job", "streaming", "-output"]).unwrap_err();
        assert!(e.contains("-output") && e.contains("needs a value"), "{e}");
        let e = run(&["tusk", "job", "streaming", "--input"]).unwrap_err();
        assert!(e.contains("--input"), "{e}");
    }

    #[test]
    fn job_options_before_the_subcommand_are_skipped() {
        let got = ok(&["tusk", "job", "--jobtracker", "h:1", "--json", "streaming", "-input", "/a"]);
        assert_eq!(got[5..], ["streaming", "--input=/a"]);
        let got = ok(&["tusk", "job", "--jobtracker=h:1", "streaming", "-input", "/a"]);
        assert_eq!(got[4], "--input=/a");
    }

    #[test]
    fn other_commands_and_after_double_dash_are_untouched() {
        for args in [
            &["tusk", "job", "run", "wordcount", "-input", "x"][..],
            &["tusk", "dfs", "streaming", "-input"],
            &["tusk", "job", "--jobtracker", "streaming", "status", "-x"],
            &["tusk"],
        ] {
            assert_eq!(ok(args), args);
        }
        assert_eq!(ok(&["tusk", "job", "streaming", "--", "-input"])[3..], ["--", "-input"]);
        assert_eq!(ok(&["tusk", "job", "streaming", "-help"])[3], "--help");
        assert_eq!(ok(&["tusk", "job", "streaming", "-input=/a"])[3], "--input=/a");
    }
}
