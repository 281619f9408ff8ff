//! `cargo xtask docs`: the man page microbox(1) and the bash, zsh and fish
//! completions, rendered from microbox's own option table (the one `--help`
//! is rendered from), so none of them can name an option `--help` lacks or
//! miss one it has. Pure renderers; `write_all` puts them in a directory.

use std::path::{Path, PathBuf};

use microbox::cli::{help_frame, option_docs, OptionDoc};

/// The generated files, by name, as the release archive lays them out.
pub fn render_all(date: &str) -> Vec<(&'static str, String)> {
    let options = option_docs();
    vec![
        ("man/man1/microbox.1", man_page(&options, date)),
        ("completions/microbox.bash", bash(&options)),
        ("completions/_microbox", zsh(&options)),
        ("completions/microbox.fish", fish(&options)),
    ]
}

/// Writes every file below `dir`; returns their paths.
pub fn write_all(dir: &Path, date: &str) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for (name, text) in render_all(date) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `cargo xtask docs [--out DIR]` (default target/microbox/docs).
pub fn run(repo: &Path, args: &[String]) -> Result<u8, String> {
    let out = match args {
        [] => repo.join("target/microbox/docs"),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => return Err("docs: use [--out DIR]".into()),
    };
    for path in write_all(&out, &source_date(repo))? {
        println!("{}", path.display());
    }
    Ok(0)
}

/// The man page's date: SOURCE_DATE_EPOCH's day if set (reproducible
/// builds), else HEAD's commit day, else none.
pub fn source_date(repo: &Path) -> String {
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().or_else(|| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["log", "-1", "--format=%ct"])
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    epoch
        .and_then(|e| e.parse::<i64>().ok())
        .map(civil_date)
        .unwrap_or_default()
}

/// `YYYY-MM-DD` of a Unix time (days-from-civil, inverted).
fn civil_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Text for roff: backslashes and hyphens escaped, no line starting with a
/// control character.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| {
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn synopsis(option: &OptionDoc) -> String {
    let long = roff(option.long);
    let mut out = match option.short {
        Some(c) => format!("\\fB\\-{c}\\fR, \\fB\\-\\-{long}\\fR"),
        None => format!("\\fB\\-\\-{long}\\fR"),
    };
    if let Some(metavar) = option.metavar {
        out.push_str(&format!(" \\fI{}\\fR", roff(metavar)));
    }
    out
}

pub fn man_page(options: &[OptionDoc], date: &str) -> String {
    let (intro, notes) = help_frame();
    let mut out = format!(
        ".TH MICROBOX 1 \"{date}\" \"microbox {}\" \"User Commands\"\n",
        microbox::VERSION
    );
    out.push_str(".SH NAME\nmicrobox \\- run a command in an ephemeral, isolated Linux sandbox\n");
    out.push_str(".SH SYNOPSIS\n\\fBmicrobox\\fR [\\fIOPTIONS\\fR] [\\fB\\-\\-\\fR] \\fICOMMAND\\fR [\\fIARG\\fR]...\n");
    out.push_str(".SH DESCRIPTION\n");
    // The usage line is the synopsis; the rest of the intro describes it.
    let described: Vec<&str> = intro.lines().skip_while(|l| !l.is_empty()).collect();
    out.push_str(&paragraphs(&described.join("\n")));
    out.push_str(".SH OPTIONS\n");
    let mut heading = "";
    for option in options {
        if option.heading != heading {
            heading = option.heading;
            out.push_str(&format!(".SS {}\n", roff(heading)));
        }
        out.push_str(&format!(
            ".TP\n{}\n{}\n",
            synopsis(option),
            roff(&option.description)
        ));
    }
    out.push_str(".SH NOTES\n");
    out.push_str(&paragraphs(notes));
    out.push_str(".SH SEE ALSO\n\\fBbwrap\\fR(1), \\fBcrun\\fR(1), \\fBrunc\\fR(8), \\fBuser_namespaces\\fR(7), \\fBcgroups\\fR(7), \\fBseccomp\\fR(2)\n");
    out
}

/// Blank-line separated paragraphs: filled text, or kept as they are when
/// any line is indented (the exit status table, the OCI synopsis).
fn paragraphs(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n") {
        let para = para.trim_matches('\n');
        if para.is_empty() {
            continue;
        }
        if para.lines().any(|l| l.starts_with("  ")) {
            out.push_str(&format!(".PP\n.nf\n{}\n.fi\n", roff(para)));
        } else {
            out.push_str(&format!(".PP\n{}\n", roff(para)));
        }
    }
    out
}

/// Values that are paths: completed as file names.
fn takes_path(option: &OptionDoc) -> bool {
    matches!(
        option.metavar,
        Some("MODE|DIR" | "FILE" | "HOST:DEST" | "DIR" | "PATH")
    )
}

pub fn bash(options: &[OptionDoc]) -> String {
    let words = |f: &dyn Fn(&OptionDoc) -> bool| {
        options
            .iter()
            .filter(|o| f(o))
            .map(|o| format!("--{}", o.long))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let all = words(&|_| true);
    let valued = words(&|o| o.metavar.is_some());
    let paths = words(&|o| takes_path(o));
    let shorts: String = options
        .iter()
        .filter_map(|o| o.short.map(|c| format!(" -{c}")))
        .collect();
    format!(
        "# bash completion for microbox (generated by cargo xtask docs from its option table)\n\
         _microbox() {{\n\
         \x20   local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} i\n\
         \x20   # After '--' or the command's first word, the words are the command's.\n\
         \x20   for ((i = 1; i < COMP_CWORD; i++)); do\n\
         \x20       case ${{COMP_WORDS[i]}} in\n\
         \x20           --) COMPREPLY=($(compgen -c -- \"$cur\")); return ;;\n\
         \x20       esac\n\
         \x20   done\n\
         \x20   case \" {paths} \" in *\" $prev \"*) COMPREPLY=($(compgen -f -- \"$cur\")); return ;; esac\n\
         \x20   case \" {valued} \" in *\" $prev \"*) COMPREPLY=(); return ;; esac\n\
         \x20   COMPREPLY=($(compgen -W \"{all}{shorts} --\" -- \"$cur\"))\n\
         }}\n\
         complete -F _microbox microbox\n"
    )
}

/// Text inside zsh's `[...]` description of `_arguments`.
fn zsh_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:")
}

pub fn zsh(options: &[OptionDoc]) -> String {
    let mut out = String::from(
        "#compdef microbox\n# zsh completion for microbox (generated by cargo xtask docs from its option table)\n_arguments -s -S \\\n",
    );
    for option in options {
        let repeat = if option.description.contains("repeatable") {
            "*"
        } else {
            ""
        };
        let value = match option.metavar {
            Some(m) if takes_path(option) => format!(":{}:_files", zsh_text(m)),
            Some(m) => format!(":{}: ", zsh_text(m)),
            None => String::new(),
        };
        let desc = zsh_text(&option.description);
        match option.short {
            Some(c) => out.push_str(&format!(
                "  '(-{c} --{long})'{{-{c},--{long}}}'[{desc}]{value}' \\\n",
                long = option.long
            )),
            None => out.push_str(&format!(
                "  '{repeat}--{}[{desc}]{value}' \\\n",
                option.long
            )),
        }
    }
    out.push_str("  '(-)1:command:_command_names -e' \\\n  '*::arguments:_normal'\n");
    out
}

pub fn fish(options: &[OptionDoc]) -> String {
    let mut out = String::from(
        "# fish completion for microbox (generated by cargo xtask docs from its option table)\n",
    );
    for option in options {
        let mut line = String::from("complete -c microbox");
        if let Some(c) = option.short {
            line.push_str(&format!(" -s {c}"));
        }
        line.push_str(&format!(" -l {}", option.long));
        match option.metavar {
            Some(_) if takes_path(option) => line.push_str(" -r -F"),
            Some(_) => line.push_str(" -x"),
            None => {}
        }
        let desc = option
            .description
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        line.push_str(&format!(" -d '{desc}'\n"));
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option `--help` shows, read from its text (not from the table).
    fn options_in_help() -> Vec<String> {
        microbox::cli::help_text()
            .lines()
            .filter_map(|line| line.strip_prefix("  "))
            .filter(|line| line.starts_with('-'))
            .flat_map(|line| {
                line.split([' ', ','])
                    .take(3)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|word| word.starts_with("--") && word.len() > 2)
            .collect()
    }

    #[test]
    fn every_option_of_help_is_in_the_man_page_and_each_completion() {
        let options = options_in_help();
        assert_eq!(options.len(), option_docs().len(), "{options:?}");
        for (name, text) in render_all("2026-01-01") {
            for option in &options {
                let spelled = if name.ends_with(".1") {
                    option.replace('-', "\\-")
                } else if name.ends_with(".fish") {
                    format!("-l {}", &option[2..])
                } else {
                    option.clone()
                };
                assert!(text.contains(&spelled), "{name} lacks {option}");
            }
        }
    }

    #[test]
    fn the_man_page_is_roff_and_every_heading_is_there() {
        let page = man_page(&option_docs(), "2026-01-01");
        assert!(page.starts_with(".TH MICROBOX 1 \"2026-01-01\""));
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "NOTES",
            "SEE ALSO",
        ] {
            assert!(page.contains(&format!(".SH {section}\n")), "{section}");
        }
        for heading in ["Filesystem", "Network", "Security", "Limits", "Other"] {
            assert!(page.contains(&format!(".SS {heading}\n")), "{heading}");
        }
        assert!(page.contains("Exit status"));
        assert!(
            page.lines()
                .filter(|l| !l.starts_with('.'))
                .all(|l| !l.starts_with('\'')),
            "a text line would be read as a request"
        );
    }

    /// Runs `script` with `shell` in a directory holding the completions;
    /// its stdout. A missing shell fails under CI=true, else skips (None).
    fn in_shell(shell: &str, args: &[&str]) -> Option<String> {
        let dir = std::env::temp_dir().join(format!("xtask-docs-{shell}-{}", std::process::id()));
        write_all(&dir, "2026-01-01").unwrap();
        let out = std::process::Command::new(shell)
            .args(args)
            .current_dir(dir.join("completions"))
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        let out = match out {
            Ok(out) => out,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipped: {shell} is not installed ({e})");
                return None;
            }
            Err(e) => panic!("{shell}: {e} (CI=true: install it; .ci/run does)"),
        };
        assert!(
            out.status.success(),
            "{shell} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn the_completions_complete_in_their_shells() {
        let script =
            "source ./microbox.bash; COMP_WORDS=(microbox --mem); COMP_CWORD=1; _microbox; \
                      echo \"${COMPREPLY[@]}\"; COMP_WORDS=(microbox --fs /us); COMP_CWORD=2; \
                      _microbox; echo \"${COMPREPLY[@]}\"; COMP_WORDS=(microbox -- ls --mem); \
                      COMP_CWORD=3; _microbox; echo \"${COMPREPLY[@]}\"";
        if let Some(out) = in_shell("bash", &["-c", script]) {
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines[0], "--memory", "{out}");
            assert_eq!(lines[1], "/usr", "a path after --fs: {out}");
            assert_eq!(lines[2], "", "after --, the command's words: {out}");
        }
        if let Some(out) = in_shell(
            "fish",
            &["-c", "source microbox.fish; complete -C 'microbox --mem'"],
        ) {
            assert!(out.starts_with("--memory\tmemory limit"), "{out}");
        }
        in_shell("zsh", &["-n", "_microbox"]);
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_796_601_600), "2026-12-07");
    }
}
