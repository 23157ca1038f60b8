//! `make invoke FN=<function> EVENT=<file>`: runs the function's real Lambda binary once against
//! a local Lambda Runtime API (`finops_tests::local`, which hands the deadline Lambda would),
//! against whatever `AWS_ENDPOINT_URL` names (real AWS when unset), and prints its JSON response alone on stdout (logs go to stderr). A function that
//! fails (at start-up too) makes it exit 1 with the function's error at once.

use std::path::PathBuf;

use finops_tests::local::Watch;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (function, event) = match args.as_slice() {
        [cmd, function, event] if cmd == "invoke" => (function.clone(), PathBuf::from(event)),
        _ => {
            eprintln!("usage: local invoke FUNCTION EVENT_FILE");
            std::process::exit(2);
        }
    };
    if !finops_tests::moto::workspace_root()
        .join("functions")
        .join(&function)
        .is_dir()
    {
        eprintln!("local: no function named {function:?} under functions/");
        std::process::exit(2);
    }
    let event = if event.is_absolute() {
        event
    } else {
        std::env::current_dir().map(|d| d.join(&event)).unwrap_or(event)
    };
    // The watch (and the function) are dropped, so killed, before exiting.
    let result = Watch::start(&function, &[]).and_then(|watch| watch.invoke(&function, &event));
    match result {
        Ok(response) => println!("{response}"),
        Err(e) => {
            eprintln!("local: {e}");
            std::process::exit(1);
        }
    }
}
