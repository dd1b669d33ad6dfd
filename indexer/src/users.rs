//! Who each command ran as: the session's OS user until a command starts a shell as someone
//! else (`sudo su -`, `sudo -i`, `su - bob`), that user until the shell exits; a prompt that
//! shows its user (`[root@ip-… ~]#`, `bob@host ~ %`) settles it, so a shell left with Ctrl-D
//! (no `exit` to see) is noticed at the next prompt. `sudo -u bob CMD` runs CMD as bob, `sudo
//! CMD` as root; a command that starts a shell is counted as its caller's.

/// Follows the effective user through a session's commands, in order.
#[derive(Debug, Clone, Default)]
pub struct EffectiveUsers {
    /// The users of the shells open now, the innermost last (shared with the rows).
    shells: Vec<Arc<str>>,
}

use std::sync::Arc;

/// Whom `sudo` runs as without `-u`.
const ROOT: &str = "root";

/// Programs that, run by `sudo` without arguments, are a shell for the one who ran them.
const SHELLS: [&str; 6] = ["bash", "sh", "zsh", "fish", "dash", "ksh"];

impl EffectiveUsers {
    /// Starts with the session's OS user, when known.
    pub fn new(run_as: Option<&str>) -> Self {
        EffectiveUsers { shells: run_as.map(Arc::from).into_iter().collect() }
    }

    /// Returns whom commands run as now.
    pub fn current(&self) -> Option<Arc<str>> {
        self.shells.last().cloned()
    }

    /// Returns whom `command`, read at a prompt showing `prompt_user` (if it shows one), ran
    /// as, and follows the shell it starts or leaves.
    pub fn next(&mut self, prompt_user: Option<&str>, command: &str) -> Option<Arc<str>> {
        // Only a user name goes into `effective_user`, which is stored in plaintext: any other
        // word (`su <a password typed by mistake>`, a prompt's text) is not taken as one.
        // The prompt of the shell the last command ran in, most of the time: nothing changes.
        let same_shell = |shown: &&str| self.shells.last().is_some_and(|last| **last == **shown);
        if let Some(shown) = prompt_user.filter(|name| !same_shell(name) && is_user_name(name)) {
            match self.shells.iter().rposition(|user| user.as_ref() == shown) {
                // Back in a shell seen before: those opened after it were left.
                Some(index) => self.shells.truncate(index + 1),
                None => self.shells.push(Arc::from(shown)),
            }
        }
        let caller = self.shells.last().cloned();
        // Most commands are none of these: no words are split for them.
        let first = command.trim_start();
        if !matches!(first.as_bytes().first(), Some(b'e' | b'l' | b's'))
            || !["exit", "logout", "sudo", "su"].iter().any(|word| first.starts_with(word))
        {
            return caller;
        }
        let words: Vec<&str> = command.split_whitespace().collect();
        match classify(&words) {
            Action::StartsShell(user) | Action::RunsAs(user) if !is_user_name(&user) => caller,
            Action::StartsShell(user) => {
                self.shells.push(Arc::from(user));
                caller
            }
            Action::RunsAs(user) => Some(Arc::from(user)),
            Action::Exits => {
                if self.shells.len() > 1 {
                    self.shells.pop();
                }
                caller
            }
            Action::Other => caller,
        }
    }
}

/// Whether `name` can be a user name: 1 to 32 of the portable characters (letters, digits,
/// `_ . -`, not starting with `-`), perhaps ending in `$`.
fn is_user_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    (1..=32).contains(&body.len())
        && !body.starts_with('-')
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// What a command does to who runs commands.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Starts an interactive shell as this user.
    StartsShell(String),
    /// Runs (only) itself as this user.
    RunsAs(String),
    /// Leaves the current shell.
    Exits,
    Other,
}

fn classify(words: &[&str]) -> Action {
    match words.first().copied() {
        Some("exit" | "logout") => Action::Exits,
        Some("sudo") => sudo(&words[1..]),
        Some("su") => su(&words[1..]).map_or(Action::Other, Action::StartsShell),
        _ => Action::Other,
    }
}

/// `sudo [-i|-s|-u USER|-iu USER|-E|-H …] [COMMAND …]`.
fn sudo(words: &[&str]) -> Action {
    let mut user = None;
    let mut login_or_shell = false;
    let mut index = 0;
    while let Some(&word) = words.get(index) {
        let Some(flags) = word.strip_prefix('-').filter(|flags| !flags.is_empty()) else {
            break;
        };
        index += 1;
        if flags == "-" {
            break;
        }
        for (position, flag) in flags.char_indices() {
            match flag {
                'i' | 's' => login_or_shell = true,
                'u' => {
                    // `-ubob` or `-u bob`.
                    let attached = &flags[position + 1..];
                    user = if attached.is_empty() {
                        index += 1;
                        words.get(index - 1).map(|user| user.to_string())
                    } else {
                        Some(attached.to_string())
                    };
                    break;
                }
                _ => {}
            }
        }
    }
    let user = user.unwrap_or_else(|| ROOT.to_string());
    let rest = &words[index.min(words.len())..];
    match rest.first().copied() {
        None if login_or_shell => Action::StartsShell(user),
        None => Action::Other,
        Some("su") => su(&rest[1..]).map_or(Action::RunsAs(user), Action::StartsShell),
        Some(program) if rest.len() == 1 && SHELLS.contains(&program) => Action::StartsShell(user),
        Some(_) => Action::RunsAs(user),
    }
}

/// `su [-|-l|--login] [USER]` starts a shell as USER (root without one); with `-c` it runs a
/// command instead (None).
fn su(words: &[&str]) -> Option<String> {
    let mut user = None;
    let mut skip_next = false;
    for &word in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        match word {
            "-" | "-l" | "--login" | "-m" | "-p" => {}
            "-c" | "--command" => return None,
            "-s" | "--shell" | "-g" | "-G" => skip_next = true,
            _ if word.starts_with('-') => {}
            _ if user.is_none() => user = Some(word.to_string()),
            _ => {}
        }
    }
    Some(user.unwrap_or_else(|| ROOT.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_classify_commands() {
        let cases: &[(&str, Action)] = &[
            ("sudo su -", Action::StartsShell("root".into())),
            ("sudo su", Action::StartsShell("root".into())),
            ("sudo -i", Action::StartsShell("root".into())),
            ("sudo -s", Action::StartsShell("root".into())),
            ("sudo -iu bob", Action::StartsShell("bob".into())),
            ("sudo -i -u bob", Action::StartsShell("bob".into())),
            ("sudo su - bob", Action::StartsShell("bob".into())),
            ("sudo bash", Action::StartsShell("root".into())),
            ("su - bob", Action::StartsShell("bob".into())),
            ("su -l", Action::StartsShell("root".into())),
            ("su -c id bob", Action::Other),
            ("sudo -u bob echo hi", Action::RunsAs("bob".into())),
            ("sudo -ubob id", Action::RunsAs("bob".into())),
            ("sudo systemctl restart nginx", Action::RunsAs("root".into())),
            ("sudo", Action::Other),
            ("exit", Action::Exits),
            ("logout", Action::Exits),
            ("echo sudo su -", Action::Other),
        ];
        for (command, expected) in cases {
            let words: Vec<&str> = command.split_whitespace().collect();
            assert_eq!(&classify(&words), expected, "{command:?}");
        }
    }

    #[test]
    fn test_users_follow_shells_and_prompts() {
        let mut users = EffectiveUsers::new(Some("ssm-user"));
        // (prompt user, command, expected effective user)
        let steps: &[(Option<&str>, &str, &str)] = &[
            (None, "id", "ssm-user"),
            (None, "sudo su -", "ssm-user"),
            (None, "whoami", "root"),
            (None, "su - bob", "root"),
            (None, "id", "bob"),
            (None, "exit", "bob"),
            (None, "id", "root"),
            (None, "exit", "root"),
            (None, "sudo -u bob id", "bob"),
            (None, "sudo -i", "ssm-user"),
            // Left with Ctrl-D: the next prompt shows ssm-user again.
            (Some("ssm-user"), "id", "ssm-user"),
            (Some("root"), "id", "root"),
        ];
        for (prompt_user, command, expected) in steps {
            assert_eq!(
                users.next(*prompt_user, command).as_deref(),
                Some(*expected),
                "{prompt_user:?} {command:?}"
            );
        }
    }

    /// A word that cannot be a user name (a mistyped password after `su`, a command
    /// substitution, a prompt's text) never becomes the effective user.
    #[test]
    fn test_only_user_names_become_the_effective_user() {
        let mut users = EffectiveUsers::new(Some("ssm-user"));
        assert_eq!(users.next(None, "su 'hunter2 pass'").as_deref(), Some("ssm-user"));
        assert_eq!(users.next(None, "sudo -u \"$(cat secret)\" id").as_deref(), Some("ssm-user"));
        assert_eq!(users.next(Some("~/src git:(main)"), "ls").as_deref(), Some("ssm-user"));
        assert_eq!(users.next(None, "sudo -u deploy_bot id").as_deref(), Some("deploy_bot"));
        assert!(is_user_name("svc-web$") && !is_user_name("-x") && !is_user_name(&"a".repeat(33)));
    }
}
