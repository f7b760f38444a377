//! `tusk job streaming`: a Hadoop Streaming job (commands as mapper,
//! combiner and reducer). Hadoop's spelling (`-input`, `-numReduceTasks`,
//! `-D k=v`) is rewritten to these flags by [`super::argv`].

use anyhow::{Context, bail};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tusk_client::{Client, CreateOptions};
use tusk_mapreduce::{InputFormat, JobSpec, OutputFormat, Program};

use super::defines;

/// Flags of `tusk job streaming` (also spelled `-input`, `-numReduceTasks`, ...).
#[derive(Debug, Args)]
pub struct StreamingArgs {
    /// Input path: file, directory or glob (repeatable; commas separate several).
    #[arg(long, required = true)]
    input: Vec<String>,
    /// Output directory (must not exist).
    #[arg(long)]
    output: String,
    /// Mapper command, run with `sh -c` (default: identity).
    #[arg(long)]
    mapper: Option<String>,
    /// Combiner command, run on map output.
    #[arg(long)]
    combiner: Option<String>,
    /// Reducer command (default: identity; `NONE` makes a map-only job).
    #[arg(long)]
    reducer: Option<String>,
    /// Local file to ship to every task's working directory (repeatable).
    #[arg(long)]
    file: Vec<PathBuf>,
    /// Comma-separated local files to ship, like -file.
    #[arg(long)]
    files: Vec<String>,
    /// Number of reduce tasks (0: map-only).
    #[arg(long = "num-reduce-tasks", alias = "numReduceTasks")]
    num_reduce_tasks: Option<u32>,
    /// Environment variable for the task commands, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    cmdenv: Vec<String>,
    /// Job configuration, KEY=VALUE (repeatable; also -D k=v and -Dk=v).
    #[arg(long = "define", short = 'D', value_name = "KEY=VALUE")]
    define: Vec<String>,
    /// Input format: only text lines (TextInputFormat) and tab-separated
    /// key/value lines (KeyValueTextInputFormat).
    #[arg(long)]
    inputformat: Option<String>,
    /// Output format: only TextOutputFormat.
    #[arg(long)]
    outputformat: Option<String>,
}

impl StreamingArgs {
    /// Every local file to ship (-file and -files).
    pub fn local_files(&self) -> Vec<PathBuf> {
        let mut all = self.file.clone();
        for list in &self.files {
            all.extend(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from));
        }
        all
    }
}

/// The job of `args`; `resolve` makes DFS paths absolute, `files` are the
/// DFS paths the local files were uploaded to.
pub fn build_spec(
    args: &StreamingArgs,
    resolve: &dyn Fn(&str) -> String,
    files: Vec<String>,
) -> anyhow::Result<JobSpec> {
    let conf = defines(&args.define)?;
    let mut env = BTreeMap::new();
    for kv in &args.cmdenv {
        let Some((k, v)) = kv.split_once('=') else { bail!("-cmdenv '{kv}': expected KEY=VALUE") };
        env.insert(k.trim().to_string(), v.to_string());
    }
    let input_format = match args.inputformat.as_deref().map(short_class_name) {
        None | Some("TextInputFormat" | "text") => InputFormat::Text,
        Some("KeyValueTextInputFormat" | "keyvalue") => InputFormat::KeyValueText,
        Some(_) => bail!(
            "-inputformat {}: not supported (only TextInputFormat and KeyValueTextInputFormat)",
            args.inputformat.as_deref().unwrap_or_default()
        ),
    };
    if let Some(f) = args.outputformat.as_deref()
        && !matches!(short_class_name(f), "TextOutputFormat" | "text")
    {
        bail!("-outputformat {f}: not supported (only TextOutputFormat)");
    }
    let program = |c: &Option<String>| match c.as_deref().map(str::trim) {
        None
        | Some("")
        | Some("org.apache.hadoop.mapred.lib.IdentityMapper")
        | Some("org.apache.hadoop.mapred.lib.IdentityReducer") => Program::Identity,
        Some(cmd) => Program::Command { command: cmd.to_string() },
    };
    let map_only = args.reducer.as_deref().map(str::trim) == Some("NONE");
    let reduces = if map_only {
        0
    } else {
        match args.num_reduce_tasks {
            Some(n) => n,
            None => conf_reduces(&conf)?.unwrap_or(1),
        }
    };
    let mut inputs = Vec::new();
    for i in &args.input {
        inputs.extend(i.split(',').map(str::trim).filter(|s| !s.is_empty()).map(resolve));
    }
    Ok(JobSpec {
        name: conf.get("mapreduce.job.name").cloned().unwrap_or_else(|| "streaming".to_string()),
        inputs,
        input_format,
        mapper: program(&args.mapper),
        combiner: args.combiner.as_ref().map(|c| Program::Command { command: c.clone() }),
        reducer: if map_only { Program::Identity } else { program(&args.reducer) },
        reduces,
        output: resolve(&args.output),
        output_format: OutputFormat::Text,
        conf,
        env,
        files,
        ..JobSpec::default()
    })
}

/// `mapreduce.job.reduces` from the job configuration, if set.
pub fn conf_reduces(conf: &BTreeMap<String, String>) -> anyhow::Result<Option<u32>> {
    match conf.get("mapreduce.job.reduces") {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).with_context(|| format!("mapreduce.job.reduces={v}: not a number")),
    }
}

/// `org.apache.hadoop.mapred.TextInputFormat` -> `TextInputFormat`.
fn short_class_name(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Uploads the local `files` into a new staging directory of `user`
/// (`/user/<user>/.staging/<uuid>/`); returns that directory and the DFS
/// path of every file. A missing local file is refused before anything is
/// uploaded.
pub async fn stage_files(client: &Client, files: &[PathBuf]) -> anyhow::Result<Option<(String, Vec<String>)>> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut names = BTreeMap::new();
    for f in files {
        let meta = std::fs::metadata(f).with_context(|| format!("-file {}", f.display()))?;
        if !meta.is_file() {
            bail!("-file {}: not a regular file", f.display());
        }
        let name = base_name(f)?;
        if let Some(other) = names.insert(name.clone(), f.clone()) {
            bail!("-file {} and {}: two files named {name} in the task directory", other.display(), f.display());
        }
    }
    let dir = format!("/user/{}/.staging/{}", client.user(), uuid::Uuid::new_v4().simple());
    client.mkdirs(&dir, Some(0o700), true).await.with_context(|| format!("creating the staging directory {dir}"))?;
    let mut paths = Vec::new();
    for (name, local) in names {
        let data = std::fs::read(&local).with_context(|| format!("-file {}", local.display()))?;
        let path = format!("{dir}/{name}");
        let mut w = client
            .create(&path, CreateOptions::default())
            .await
            .with_context(|| format!("uploading {}", local.display()))?;
        w.write(&data).await?;
        w.close().await?;
        paths.push(path);
    }
    Ok(Some((dir, paths)))
}

fn base_name(p: &Path) -> anyhow::Result<String> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("-file {}: no usable file name", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StreamingArgs,
    }

    /// Parses Hadoop-spelled options the way `tusk` does.
    fn parse(opts: &[&str]) -> StreamingArgs {
        let mut argv: Vec<std::ffi::OsString> = ["tusk", "job", "streaming"].iter().map(Into::into).collect();
        argv.extend(opts.iter().map(Into::into));
        let argv = super::super::argv::rewrite(argv).unwrap();
        Cli::try_parse_from(std::iter::once("x".into()).chain(argv.into_iter().skip(3))).unwrap().args
    }

    fn resolve(p: &str) -> String {
        if p.starts_with('/') { p.to_string() } else { format!("/user/u/{p}") }
    }

    #[test]
    fn a_hadoop_command_line_becomes_a_job() {
        let a = parse(&[
            "-input",
            "in,/x/*.txt",
            "-output",
            "out",
            "-mapper",
            "python3 m.py",
            "-combiner",
            "sort",
            "-reducer",
            "r.sh",
            "-numReduceTasks",
            "4",
            "-cmdenv",
            "LANG=C",
            "-D",
            "mapreduce.job.name=wc",
            "-Dx.y=1",
            "-file",
            "m.py",
        ]);
        let spec = build_spec(&a, &resolve, vec!["/user/u/.staging/1/m.py".into()]).unwrap();
        assert_eq!(spec.inputs, ["/user/u/in", "/x/*.txt"]);
        assert_eq!(spec.output, "/user/u/out");
        assert_eq!(spec.name, "wc");
        assert_eq!(spec.mapper, Program::Command { command: "python3 m.py".into() });
        assert_eq!(spec.combiner, Some(Program::Command { command: "sort".into() }));
        assert_eq!(spec.reducer, Program::Command { command: "r.sh".into() });
        assert_eq!(spec.reduces, 4);
        assert_eq!(spec.env.get("LANG").map(String::as_str), Some("C"));
        assert_eq!(spec.conf.get("x.y").map(String::as_str), Some("1"));
        assert_eq!(spec.files, ["/user/u/.staging/1/m.py"]);
        assert_eq!(spec.input_format, InputFormat::Text);
        assert_eq!(a.local_files(), [PathBuf::from("m.py")]);
    }

    #[test]
    fn defaults_map_only_and_reduces_from_the_configuration() {
        let a = parse(&["-input", "/i", "-output", "/o"]);
        let spec = build_spec(&a, &resolve, vec![]).unwrap();
        assert_eq!(
            (spec.mapper.clone(), spec.reducer.clone(), spec.reduces),
            (Program::Identity, Program::Identity, 1)
        );
        assert_eq!(spec.name, "streaming");
        let a = parse(&["-input", "/i", "-output", "/o", "-mapper", "cat", "-reducer", "NONE", "-numReduceTasks", "5"]);
        assert_eq!(build_spec(&a, &resolve, vec![]).unwrap().reduces, 0);
        let a = parse(&["-input", "/i", "-output", "/o", "-D", "mapreduce.job.reduces=3"]);
        assert_eq!(build_spec(&a, &resolve, vec![]).unwrap().reduces, 3);
        let a = parse(&["-input", "/i", "-output", "/o", "-D", "mapreduce.job.reduces=3", "-numReduceTasks", "0"]);
        assert_eq!(build_spec(&a, &resolve, vec![]).unwrap().reduces, 0);
        let a = parse(&["-input", "/i", "-output", "/o", "-D", "mapreduce.job.reduces=many"]);
        assert!(build_spec(&a, &resolve, vec![]).unwrap_err().to_string().contains("mapreduce.job.reduces"));
    }

    #[test]
    fn long_spelling_gives_the_same_job() {
        let hadoop = parse(&["-input", "/i", "-output", "/o", "-mapper", "cat", "-numReduceTasks", "2", "-D", "a=b"]);
        let long = parse(&[
            "--input",
            "/i",
            "--output",
            "/o",
            "--mapper",
            "cat",
            "--num-reduce-tasks",
            "2",
            "--define",
            "a=b",
        ]);
        assert_eq!(build_spec(&hadoop, &resolve, vec![]).unwrap(), build_spec(&long, &resolve, vec![]).unwrap());
    }

    #[test]
    fn formats_and_bad_pairs_are_checked() {
        let a = parse(&[
            "-input",
            "/i",
            "-output",
            "/o",
            "-inputformat",
            "org.apache.hadoop.mapred.KeyValueTextInputFormat",
        ]);
        assert_eq!(build_spec(&a, &resolve, vec![]).unwrap().input_format, InputFormat::KeyValueText);
        let a = parse(&["-input", "/i", "-output", "/o", "-inputformat", "SequenceFileInputFormat"]);
        assert!(build_spec(&a, &resolve, vec![]).unwrap_err().to_string().contains("SequenceFileInputFormat"));
        let a = parse(&["-input", "/i", "-output", "/o", "-outputformat", "SequenceFileOutputFormat"]);
        assert!(build_spec(&a, &resolve, vec![]).unwrap_err().to_string().contains("SequenceFileOutputFormat"));
        let a = parse(&["-input", "/i", "-output", "/o", "-cmdenv", "NOVALUE"]);
        assert!(build_spec(&a, &resolve, vec![]).unwrap_err().to_string().contains("NOVALUE"));
        let a = parse(&["-input", "/i", "-output", "/o", "-D", "novalue"]);
        assert!(build_spec(&a, &resolve, vec![]).unwrap_err().to_string().contains("novalue"));
    }

    #[test]
    fn files_lists_split_on_commas() {
        let a = parse(&["-input", "/i", "-output", "/o", "-files", "a.py,b/c.sh", "-file", "d"]);
        assert_eq!(a.local_files(), [PathBuf::from("d"), PathBuf::from("a.py"), PathBuf::from("b/c.sh")]);
    }
}
