//! The stack commands run through the real xtask binary against a fake `docker` that
//! records every call, so the exact Compose command lines are checked without an engine.

use std::fs;
use std::process::{Command, Output, Stdio};

use crate::support::fake_docker::{anonymous, Compose};
use crate::support::sandbox::Sandbox;

pub const PROD_ENV: &str = "DEBUG=0
SECRET_KEY=Zq8vK2mN5pR7tW9yB3dF6hJ1lX4cV0gT8sA2eU5iO7nM9kQ3wE
ALLOWED_HOSTS=example.com
CSRF_TRUSTED_ORIGINS=https://example.com
POSTGRES_HOST=db.example.net
POSTGRES_PORT=5432
POSTGRES_USER=app
POSTGRES_PASSWORD=vN4rT8yU2iO6pA1s
POSTGRES_DB=app
HTTP_PORT=8080
HTTPS_PORT=8443
";

/// A project root named `shop` with both env files and the build context's sources, run in
/// an empty environment whose PATH holds the fake `docker` alone.
pub fn shop(compose: Compose) -> Sandbox {
    Sandbox::named("shop")
        .with_clean_env()
        .with_file(".env", "DEBUG=1\nSECRET_KEY=dev\nPOSTGRES_HOST=db\n")
        .with_file(".env.prod", PROD_ENV)
        .with_context_sources()
        .with_fake_docker(compose)
}

/// The Compose command of `stack`: its files, then the template's worker and scheduler.
fn base_v2(stack: &str) -> String {
    match stack {
        "dev" => "docker compose --project-name shop-dev --project-directory ROOT --env-file ROOT/.env -f ROOT/docker/compose.yml -f ROOT/.stack/processes/dev.yml".into(),
        // A dev command that may build or run web: the project's secrets hidden from its bind mount.
        "dev-build" => format!("{} -f ROOT/.stack/dev/hide-secrets.yml", base_v2("dev")),
        "prod" => "docker compose --project-name shop-prod --project-directory ROOT --env-file ROOT/.env.prod -f ROOT/docker/compose.prod.yml -f ROOT/.stack/processes/prod.yml".into(),
        other => panic!("no stack {other}"),
    }
}

/// The production Compose command with the overlay `file` among its files.
fn prod_with(file: &str) -> String {
    let processes = " -f ROOT/.stack/processes/prod.yml";
    base_v2("prod").replace(processes, &format!(" -f ROOT/{file}{processes}"))
}

/// The variables of a production Compose command: the image name, the project's
/// description (a root without one runs project-template/), then the certificate's files.
const PROD_VARS: &str = "WEB_IMAGE=shop-web DJANGO_DIR=project-template DJANGO_DEPENDENCIES=project-template/requirements.txt \
    PYTHON_VERSION=3.13 DJANGO_SETTINGS=config.settings.prod DJANGO_PROJECT_SETTINGS=config.settings.prod \
    DJANGO_APP=config.wsgi DJANGO_WORKER_CLASS=sync BUILD_PACKAGES='' RUN_PACKAGES='' TLS_CERT_FILE=ROOT/certs/site.pem TLS_KEY_FILE=ROOT/certs/site-key.pem";

/// What the fake records for a compose call on `stack` running `rest`.
fn call(flavour: Compose, stack: &str, rest: &str) -> String {
    let web_image = if stack == "prod" { "shop-web" } else { "" };
    let base = base_v2(stack);
    let base = if flavour == Compose::V1Only { base.replacen("docker compose", "docker-compose", 1) } else { base };
    format!("ROOT|WEB_IMAGE={web_image}|{base} {rest}")
}

/// The probes every real run makes before its plan: which Compose, and is the engine up.
fn probes(flavour: Compose) -> Vec<String> {
    let mut calls = vec!["ROOT|WEB_IMAGE=|docker compose version".to_owned()];
    if flavour == Compose::V1Only {
        calls.push("ROOT|WEB_IMAGE=|docker-compose version".into());
    }
    calls.push("ROOT|WEB_IMAGE=|docker info --format {{.ServerVersion}}".into());
    calls
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_calls(flavour: Compose, args: &[&str], stack: &str, expected: &[&str]) {
    let sandbox = shop(flavour);
    let output = sandbox.output(args, &[]);
    assert!(output.status.success(), "{args:?} failed: {}", stderr(&output));
    let mut want = probes(flavour);
    for rest in expected {
        if rest.starts_with("ROOT|") {
            want.push((*rest).to_owned());
            continue;
        }
        want.push(call(flavour, stack, rest));
        if *rest == "ps -q" {
            want.push(INSPECT.to_owned());
        }
        if rest.starts_with("run --name NAME") {
            want.extend(ONE_OFF_READBACK.map(str::to_owned));
        }
        if rest.starts_with("down") {
            let project = if stack.starts_with("dev") { "shop-dev" } else { "shop-prod" };
            want.push(format!("ROOT|WEB_IMAGE=|docker ps --all --filter label=com.docker.compose.project={project} --format {{{{.Names}}}}"));
        }
    }
    assert_eq!(sandbox.calls(), want, "calls of {args:?}");
}

fn each_flavour(args: &[&str], stack: &str, expected: &[&str]) {
    for flavour in [Compose::V2, Compose::V1Only] {
        assert_calls(flavour, args, stack, expected);
    }
}

#[test]
fn dev_starts_the_dev_stack_in_the_foreground_or_detached() {
    // The worker and scheduler run web's image, built first.
    each_flavour(&["dev"], "dev-build", &["build web", "up"]);
    // Detached, it returns once every healthcheck passes.
    each_flavour(&["dev", "--build", "-d"], "dev-build", &["build web", "up --detach", "ps -q"]);
}

/// Starts the xtask in its own process group, then does what a terminal's Ctrl-C does
/// (signal the whole foreground group) once the recorded calls satisfy `ready`.
fn interrupt_when(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)], ready: fn(&[String]) -> bool) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = sandbox.xtask_command(args);
    cmd.envs(env.iter().copied()).stderr(Stdio::piped()).process_group(0);
    let child = cmd.spawn().unwrap();
    let started = std::time::Instant::now();
    while !ready(&sandbox.calls()) {
        assert!(started.elapsed().as_secs() < 20, "{args:?} never got ready: {:#?}", sandbox.calls());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let group = format!("-{}", child.id());
    assert!(Command::new("kill").args(["-INT", "--", &group]).status().unwrap().success());
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_in_the_foreground_stops_the_stack_and_returns_after_it() {
    let sandbox = shop(Compose::V2).with_program("sleep");
    let output =
        interrupt_when(&sandbox, &["dev"], &[("FAKE_BLOCK", "1")], |calls| calls.iter().any(|c| c == "running"));
    assert_eq!(sandbox.calls().last().map(String::as_str), Some("stopped"), "returned before the stack stopped");
    assert_eq!(output.status.code(), Some(130));
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}

#[test]
fn ctrl_c_while_waiting_for_health_stops_the_wait_without_a_timeout_error() {
    let sandbox = shop(Compose::V2);
    let env = [("FAKE_INSPECT", "web running starting")];
    let output = interrupt_when(&sandbox, &["prod", "--wait-timeout", "60"], &env, |calls| {
        calls.iter().any(|c| c.starts_with("ROOT|WEB_IMAGE=|docker inspect") && c.contains("compose.service"))
    });
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}

#[test]
fn prod_builds_checks_starts_and_waits_for_health() {
    each_flavour(
        &["prod"],
        "prod",
        &[
            RUNNING_WEB,
            "build",
            // Nothing runs: the deploy goes on without asking what changed.
            RUNNING_WEB,
            // The release steps run unless they ran for this image (the fake knows none).
            IMAGE_ID,
            RELEASE_STEPS,
            IMAGE_ID,
            RUNNING_WEB,
            // The fake lists no service: all start the way Compose orders them.
            "config --services",
            "up --detach --no-build --remove-orphans",
            "ps -q",
        ],
    );
}

/// The release steps of a deploy, in one one-off container of the new image, as the fake
/// records it (the arguments joined by spaces).
const RELEASE_STEPS: &str = "run --name NAME -T --no-deps web sh -c python manage.py check --deploy --fail-level WARNING && python manage.py migrate --noinput && cp -R /opt/static/. /app/staticfiles/";

/// How a deploy asks whether the web service is running (a redeploy) or not (a first start).
const RUNNING_WEB: &str = "ROOT|WEB_IMAGE=|docker ps --filter status=running --filter label=com.docker.compose.project=shop-prod --filter label=com.docker.compose.service=web --format {{.Names}}";

/// What follows every one-off run: its container's state read back, then the container removed.
const ONE_OFF_READBACK: [&str; 2] = [
    "ROOT|WEB_IMAGE=|docker inspect --format {{.State.Status}} {{.State.ExitCode}} NAME",
    "ROOT|WEB_IMAGE=|docker rm --force NAME",
];

const INSPECT: &str = r#"ROOT|WEB_IMAGE=|docker inspect --format {{if index .Config.Labels "xtask.health"}}report {{end}}{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.Name}} {{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}} c1 c2 c3"#;

#[test]
fn prod_with_the_bundled_database_adds_the_db_overlay() {
    let sandbox = shop(Compose::V2);
    let env = PROD_ENV.replace("POSTGRES_HOST=db.example.net", "POSTGRES_HOST=db");
    fs::write(sandbox.root().join(".env.prod"), env).unwrap();
    // The fake's database runs as one container once started.
    let output = sandbox.output(&["prod", "--with-db", "--no-build"], &[("FAKE_PROCESSES", "db")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let overlay = prod_with("docker/compose.db.yml");
    let calls = sandbox.calls();
    // Probes, serving?, the image confirmed, serving? (what changed), the database started
    // and waited for, the image's id, the release steps with their read-back, the image's id
    // (to record them), serving? (first start or redeploy), the services, up, the health wait.
    assert_eq!(calls.len(), 2 + 1 + 1 + 1 + 3 + 1 + 3 + 1 + 1 + 1 + 1 + 2, "{calls:#?}");
    assert_eq!(calls[3], IMAGE_ID, "--no-build confirms the image");
    assert!(calls[5].ends_with(" up --detach --no-build --no-deps --no-recreate db"), "{}", calls[5]);
    for call in [&calls[5], &calls[9], &calls[14], &calls[15], &calls[16]] {
        assert!(call.contains(&overlay), "{call}");
    }
    assert!(!calls.iter().any(|c| c.contains(" build")), "--no-build still built: {calls:#?}");
    // Later prod commands follow the env file, so `down --volumes` also removes the db volume.
    let output = sandbox.output(&["down", "--prod", "--volumes"], &[]);
    assert!(output.status.success());
    let calls = sandbox.calls();
    assert!(calls[calls.len() - 2].ends_with(&format!("{overlay} down --volumes")), "{calls:#?}");
}

#[test]
fn acme_mode_adds_the_certbot_overlay_and_tls_renew_runs_certbot_in_it() {
    let sandbox = shop(Compose::V2);
    let local = sandbox.output(&["tls", "renew"], &[]);
    let refusal = "error: tls renew is for TLS_MODE=acme, and .env.prod does not set it: local certificates are renewed by every `cargo xtask prod`, TLS_MODE=files by replacing the files\n";
    assert_eq!((local.status.code(), stderr(&local).as_str()), (Some(1), refusal));
    assert!(sandbox.calls().is_empty(), "{:#?}", sandbox.calls());
    fs::write(sandbox.root().join(".env.prod"), format!("{PROD_ENV}TLS_MODE=acme\nACME_EMAIL=admin@example.com\n"))
        .unwrap();
    let output = sandbox.output(&["prod", "--no-build"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let overlay = format!("{} ", prod_with("docker/compose.acme.yml"));
    let compose: Vec<String> = sandbox.calls().into_iter().filter(|c| c.contains(" compose --project-name")).collect();
    assert!(compose.len() >= 3 && compose.iter().all(|c| c.contains(&overlay)), "{compose:#?}");
    assert!(sandbox.root().join("certs/acme-bootstrap.pem").is_file(), "prod makes the bootstrap certificate");
    let output = sandbox.output(&["tls", "renew", "--force"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let calls = sandbox.calls();
    let renew = format!(
        "ROOT|WEB_IMAGE=shop-web|{overlay}exec -T certbot /bin/sh /opt/certbot-service.sh renew --force-renewal"
    );
    assert_eq!(calls.last(), Some(&renew), "{calls:#?}");
}

#[test]
fn with_db_refuses_an_env_file_that_points_elsewhere() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["prod", "--with-db"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("POSTGRES_HOST=\"db.example.net\"") && err.contains("set POSTGRES_HOST=db"), "{err}");
    assert!(sandbox.calls().is_empty());
}

#[test]
fn prod_prints_the_url_once_healthy() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["prod"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("https://example.com:8443/"), "{stdout}");
}

#[test]
fn verbose_echoes_every_command_of_the_health_wait() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["-v", "prod", "--no-build"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let root = sandbox.root().display().to_string();
    let err = stderr(&output).replace(&root, "ROOT");
    // The chain's hash as sha256sum reads it: the file prod just wrote.
    let sum = Command::new("sha256sum").arg(sandbox.root().join("certs/site.pem")).output().unwrap();
    let hash = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_owned();
    assert_eq!(hash.len(), 64, "{sum:?}");
    let ps = format!("+ cd ROOT && {PROD_VARS} TLS_CERT_SHA256={hash} NGINX_CONF_SHA256='' {} ps -q", base_v2("prod"));
    assert!(err.lines().any(|l| l == ps), "{err}");
    let inspect = "+ cd ROOT && docker inspect --format '{{if index .Config.Labels \"xtask.health\"}}report {{end}}{{index .Config.Labels \"com.docker.compose.service\"}} {{.State.Status}}";
    assert!(err.lines().any(|l| l.starts_with(inspect) && l.ends_with(" c1 c2 c3")), "{err}");
}

#[test]
fn prod_reports_unhealthy_services_with_their_logs_on_timeout() {
    let sandbox = shop(Compose::V2);
    let inspect = "web running starting\\nnginx running healthy";
    let output = sandbox.output(&["prod", "--wait-timeout", "0"], &[("FAKE_INSPECT", inspect)]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("service(s) web not healthy after 0s"), "{err}");
    let logs = call(Compose::V2, "prod", "logs --no-color --tail 100 web");
    assert!(sandbox.calls().contains(&logs), "{:#?}", sandbox.calls());
}

#[test]
fn prod_stops_waiting_when_a_container_exits() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["prod"], &[("FAKE_INSPECT", "web exited none\\nnginx running starting")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("service(s) web stopped before becoming healthy"), "{}", stderr(&output));
}

#[test]
fn one_off_manage_commands_build_then_run_in_a_named_web_container_read_back_and_removed() {
    each_flavour(
        &["migrate"],
        "dev-build",
        &["build web", "run --name NAME -T web python manage.py migrate --noinput"],
    );
    each_flavour(
        &["collectstatic", "--prod"],
        "prod",
        &["build web", "run --name NAME -T web python manage.py collectstatic --noinput"],
    );
    each_flavour(
        &["manage", "--prod", "--", "createsuperuser", "--username", "admin"],
        "prod",
        &["build web", "run --name NAME -T web python manage.py createsuperuser --username admin"],
    );
}

#[test]
fn test_runs_the_suite_in_the_production_image_with_a_throwaway_database_and_redis() {
    let sandbox = shop(Compose::V2).with_repo_files(&["docker/prod.env.example"]);
    let output = sandbox.output(&["test", "--", "core.tests", "-v", "2"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let calls = sandbox.calls();
    // Its own Compose project, the production files with the bundled database and Redis.
    let base = "docker compose --project-name shop-test --project-directory ROOT --env-file ROOT/.stack/test/env \
                -f ROOT/docker/compose.prod.yml -f ROOT/docker/compose.db.yml -f ROOT/docker/compose.redis.yml";
    let suite = format!(
        "{base} run --name NAME -T -e DJANGO_SETTINGS_MODULE=stack_settings.test \
         -e DJANGO_TEST_BASE_SETTINGS=config.settings.prod web python manage.py test core.tests -v 2"
    );
    let at =
        |line: &str| calls.iter().position(|c| c.ends_with(line)).unwrap_or_else(|| panic!("no {line}: {calls:#?}"));
    assert!(at(&format!("{base} build web")) < at(&suite), "{calls:#?}");
    let env = fs::read_to_string(sandbox.root().join(".stack/test/env")).unwrap();
    let example = env.lines().any(|l| !l.starts_with('#') && l.contains("change-me"));
    assert!(env.contains("\nREDIS_URL=redis://:") && !example, "fresh secrets, not the example's:\n{env}");
}

#[test]
fn check_notes_the_projects_objects_before_and_looks_again_after() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["check"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let label = "--filter label=com.docker.compose.project=shop-dev";
    let lists = [
        format!("ROOT|WEB_IMAGE=|docker ps --all --quiet --no-trunc {label}"),
        format!("ROOT|WEB_IMAGE=|docker network ls --quiet {label}"),
        format!("ROOT|WEB_IMAGE=|docker volume ls --quiet {label}"),
    ];
    let mut want = probes(Compose::V2);
    want.extend(lists.iter().cloned());
    want.push(call(Compose::V2, "dev-build", "build web"));
    want.push(call(Compose::V2, "dev-build", "run --name NAME -T --no-deps web python manage.py check"));
    want.extend(ONE_OFF_READBACK.map(str::to_owned));
    want.extend(lists.iter().cloned());
    assert_eq!(sandbox.calls(), want);
}

#[test]
fn a_one_off_that_compose_reports_as_passed_but_never_ran_fails() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["migrate"], &[("FAKE_ONEOFF", "")]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: the one-off container shop-dev-oneoff-") && err.contains("never ran"), "{err}");
    assert_eq!(sandbox.calls().last().unwrap(), ONE_OFF_READBACK[1], "the container was not removed");
}

#[test]
fn the_one_off_containers_own_exit_code_wins_over_composes() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["manage", "--", "shell"], &[("FAKE_ONEOFF", "exited 5")]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
}

#[test]
fn down_logs_and_ps_pass_their_flags() {
    each_flavour(&["down"], "dev", &["down"]);
    each_flavour(&["down", "--prod", "--volumes"], "prod", &["down --volumes"]);
    each_flavour(&["logs", "-f", "web"], "dev", &["logs --follow web"]);
    each_flavour(&["logs", "--prod"], "prod", &["logs"]);
    each_flavour(&["ps", "--prod"], "prod", &["ps"]);
}

#[test]
fn down_that_leaves_containers_behind_names_them() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["down", "--prod"], &[("FAKE_PS", "shop-prod-db-1\\n")]);
    assert_eq!(output.status.code(), Some(1));
    let line = "error: `down` left container(s) shop-prod-db-1 of project shop-prod, from services the compose files no longer name: remove them with `docker rm --force shop-prod-db-1`\n";
    assert_eq!(stderr(&output), line);
}

#[test]
fn xtask_compose_overrides_detection() {
    let sandbox = shop(Compose::V1Only);
    let output = sandbox.output(&["ps"], &[("XTASK_COMPOSE", "docker-compose")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let calls = sandbox.calls();
    assert_eq!(calls.len(), 2, "no detection probe expected: {calls:#?}");
    assert!(calls[1].ends_with(&format!("{} ps", base_v2("dev").replacen("docker compose", "docker-compose", 1))));
}

#[test]
fn a_failing_child_passes_its_exit_code_through() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["migrate"], &[("FAKE_EXIT", "3")]);
    assert_eq!(output.status.code(), Some(3));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    let build = "error: cannot build the web image: `cd ";
    assert!(err.starts_with(build) && err.trim_end().ends_with("build web` failed with exit code 3"), "{err}");
}

#[test]
fn dry_run_prints_the_plan_and_calls_nothing() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["--dry-run", "prod"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(sandbox.calls().is_empty(), "dry run called docker: {:#?}", sandbox.calls());
    let root = sandbox.root().display().to_string();
    let stdout = anonymous(&String::from_utf8_lossy(&output.stdout).replace(&root, "ROOT"));
    let lines: Vec<&str> = stdout.lines().collect();
    let context = "DJANGO_BUILD_CONTEXT=ROOT/.stack/build/prod";
    let line = |rest: &str| {
        format!("cd ROOT && {PROD_VARS} TLS_CERT_SHA256='' NGINX_CONF_SHA256='' {context} {} {rest}", base_v2("prod"))
    };
    assert_eq!(
        lines[0],
        "# would write a local CA and a certificate for example.com under certs/ (ROOT/certs/ca.pem does not exist)"
    );
    let processes = "# write ROOT/.stack/processes/prod.yml: the services beat, worker of the project's processes";
    assert_eq!(lines[1], processes);
    let ports = "# check that HTTP_PORT=8080 and HTTPS_PORT=8443 are free on this host, unless the stack's own containers hold them";
    assert_eq!(lines[2], ports);
    assert!(
        lines[3].starts_with("# fill the build context ROOT/.stack/build/prod with the Dockerfile"),
        "{}",
        lines[3]
    );
    let lines = &lines[3..];
    assert_eq!(lines[1], line("build"));
    let unchanged = format!("# nothing to deploy when `{}` would leave every container of project shop-prod running as it is and web, beat, worker run(s) image shop-web; else:", line("--dry-run up --detach --no-build --remove-orphans"));
    assert_eq!(lines[2], unchanged);
    let release = "'python manage.py check --deploy --fail-level WARNING && python manage.py migrate --noinput && cp -R /opt/static/. /app/staticfiles/'";
    let once = "# unless ROOT/.stack/prod/released records that they ran for the id of image shop-web, database db.example.net:5432/app and the volumes as `cd ROOT && docker volume inspect --format '{{.Name}} {{.CreatedAt}}' shop-prod_static` shows them:";
    assert_eq!(lines[3], once);
    assert_eq!(lines[4], line(&format!("run --name NAME -T --no-deps web sh -c {release}")));
    assert_eq!(lines[5], "cd ROOT && docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' NAME");
    assert_eq!(lines[6], "cd ROOT && docker rm --force NAME");
    assert_eq!(lines[7], "# then: record them there");
    let lines = &lines[5..];
    let docker = |rest: &str| format!("cd ROOT && docker {rest}");
    let labels =
        "--filter 'label=com.docker.compose.project=shop-prod' --filter 'label=com.docker.compose.service=web'";
    let deploy = [
        format!("# if web and nginx of project shop-prod are running (`cd ROOT && docker ps --filter 'status=running' {labels} --format '{{{{.Names}}}}'`), redeploy beside them:"),
        "# remove web containers that are not running: `cd ROOT && docker rm --force STALE...`".into(),
        docker("inspect --format '{{.Image}}' OLD"),
        line("up --detach --no-deps --no-build --no-recreate --scale 'web=<2 x running>' web"),
        line("up --detach --no-deps --no-build --no-recreate --scale 'worker=<running + 1>' worker"),
        "# wait up to 120s until the new web container(s) NEW... and those of the workers are up; else `cd ROOT && docker rm --force NEW...`, and the old ones keep serving".into(),
        format!("# list nginx's workers (PIDS): {}", line(&format!("exec -T nginx sh -c {WORKER_PIDS_QUOTED}"))),
        "# write ROOT/.stack/nginx/django_web.conf naming NEW..., then:".into(),
        line("exec -T nginx nginx -t -q"),
        line("exec -T nginx nginx -s reload"),
        "# wait up to 30s until PIDS have finished their requests and exited, listing them again".into(),
        docker("stop OLD..."),
        docker("rm OLD..."),
        docker("stop -t 60 OLD-worker..."),
        docker("rm OLD-worker..."),
        docker("stop -t 10 OLD-beat..."),
        line("up --detach --no-deps --no-build --force-recreate beat"),
        "# wait until it is up; else the same with WEB_IMAGE=OLD-IMAGE".into(),
        docker("tag OLD-IMAGE shop-web:previous"),
        format!("# OTHERS: the services `{}` lists besides web, the processes, nginx", line("config --services")),
        line("up --detach --no-build --no-deps --remove-orphans nginx OTHERS..."),
        format!("# wait up to 120s until every healthcheck passes, polling: {} ps -q", line("").trim_end()),
        "# else (first start): write ROOT/.stack/nginx/django_web.conf naming the web service, then:".into(),
        line("up --detach --no-build --no-deps web beat worker nginx"),
        format!("# then, if `{}` lists a service besides those: {}", line("config --services"), line("up --detach --no-build --remove-orphans")),
    ];
    assert_eq!(lines[3..3 + deploy.len()], deploy, "{stdout}");
    assert!(lines[28].starts_with("# wait up to 120s"), "{}", lines[28]);
    assert_eq!(lines[29], "# then: the production stack is up at https://example.com:8443/");
    assert_eq!(lines.len(), 30, "{stdout}");
    assert!(!sandbox.root().join("certs").exists(), "the dry run wrote certificates");
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");
}

#[test]
fn missing_compose_is_one_line_naming_what_to_install() {
    let sandbox = shop(Compose::Nothing);
    let output = sandbox.output(&["ps"], &[("FAKE_COMPOSE_V2", "0")]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Docker Compose not found: install the Compose v2 plugin"), "{err}");
}

#[test]
fn an_unreachable_engine_is_one_line() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["dev"], &[("FAKE_ENGINE", "down")]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach the Docker engine (Cannot connect to the Docker daemon"), "{err}");
    assert!(!sandbox.calls().iter().any(|c| c.contains(" up")), "started anyway: {:#?}", sandbox.calls());
}

#[test]
fn a_missing_env_file_names_the_init_command() {
    let sandbox = shop(Compose::V2);
    fs::remove_file(sandbox.root().join(".env")).unwrap();
    fs::remove_file(sandbox.root().join(".env.prod")).unwrap();
    let dev = sandbox.output(&["dev"], &[]);
    assert_eq!(dev.status.code(), Some(1));
    assert!(
        stderr(&dev).trim_end().ends_with(".env not found: run `cargo xtask init` to create it"),
        "{}",
        stderr(&dev)
    );
    let prod = sandbox.output(&["prod"], &[]);
    assert!(
        stderr(&prod).contains(".env.prod not found: run `cargo xtask init --prod --host HOST`"),
        "{}",
        stderr(&prod)
    );
    assert!(sandbox.calls().is_empty());
}

#[test]
fn a_bad_project_name_is_one_line_naming_it() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["ps"], &[("XTASK_PROJECT_NAME", "My Site")]);
    assert_eq!(output.status.code(), Some(1));
    let line = "error: XTASK_PROJECT_NAME=\"My Site\" is not a valid project name: use lower-case letters, digits, `-` and `_`, starting with a letter or digit\n";
    assert_eq!(stderr(&output), line);
    assert!(sandbox.calls().is_empty());
}

#[test]
fn a_bad_project_root_is_one_line_naming_it() {
    let sandbox = shop(Compose::V2);
    let missing = sandbox.path("nowhere");
    let output = sandbox.output(&["ps"], &[("XTASK_ROOT", missing.to_str().unwrap())]);
    assert_eq!(output.status.code(), Some(1));
    let line = format!(
        "error: XTASK_ROOT={} is not a directory: set it to the project root, or unset it\n",
        missing.display()
    );
    assert_eq!(stderr(&output), line);
    assert!(sandbox.calls().is_empty());
}

#[test]
fn help_lists_every_command() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["--help"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "dev",
        "prod",
        "migrate",
        "collectstatic",
        "manage",
        "down",
        "logs",
        "ps",
        "init",
        "check",
        "release",
        "verify",
        "db",
        "ci",
    ] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(command)), "{command} missing from:\n{help}");
    }
}

/// A listener on `host` holding a port the OS picked, and that port.
fn hold_port(host: &str) -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind((host, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[test]
fn prod_and_dev_refuse_a_port_already_bound_on_the_host_before_building() {
    let cases = [
        ("prod", ".env.prod", "HTTP_PORT", "0.0.0.0", "shop-prod"),
        ("dev", ".env", "DEV_PORT", "127.0.0.1", "shop-dev"),
    ];
    for (command, file, variable, host, project) in cases {
        let sandbox = shop(Compose::V2);
        let (_held, port) = hold_port(host);
        let env = fs::read_to_string(sandbox.root().join(file)).unwrap();
        fs::write(sandbox.root().join(file), format!("{env}{variable}={port}\n").replace("HTTP_PORT=8080\n", ""))
            .unwrap();
        let output = sandbox.output(&[command], &[]);
        assert_eq!(output.status.code(), Some(1), "{command}: {}", stderr(&output));
        let line = format!("error: {variable}={port} is already in use on this host: stop what listens on port {port}, or set {variable} to a free port in {file}\n");
        assert_eq!(stderr(&output), line);
        let mut want = probes(Compose::V2);
        let held = format!("label=com.docker.compose.project={project} --filter publish={port}");
        want.push(format!("ROOT|WEB_IMAGE=|docker ps --quiet --filter {held}"));
        assert_eq!(sandbox.calls(), want, "{command} went on past the port check");
    }
}

#[test]
fn a_port_held_by_the_stacks_own_container_is_no_reason_to_refuse() {
    let sandbox = shop(Compose::V2);
    let (_held, port) = hold_port("0.0.0.0");
    let env = PROD_ENV.replace("HTTP_PORT=8080", &format!("HTTP_PORT={port}"));
    fs::write(sandbox.root().join(".env.prod"), env).unwrap();
    let output = sandbox.output(&["prod"], &[("FAKE_PS", "c0ffee\\n")]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_start_that_fails_half_way_names_the_containers_left_and_how_to_remove_them() {
    let sandbox = shop(Compose::V2);
    let left = [("FAKE_FAIL_ON", "up"), ("FAKE_PS", "shop-prod-web-1\\nshop-prod-db-1\\n")];
    let output = sandbox.output(&["prod"], &left);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    let said = "error: the prod stack did not start and left container(s) shop-prod-db-1, shop-prod-web-1: remove them with `cargo xtask down --prod`: `cd ";
    assert!(errors.len() == 1 && errors[0].starts_with(said), "{err}");
    assert!(errors[0].ends_with(" up --detach --no-build --remove-orphans` failed with exit code 1"), "{err}");

    let output = sandbox.output(&["prod"], &[("FAKE_FAIL_ON", "up")]);
    let err = stderr(&output);
    assert!(err.contains("error: `cd ") && !err.contains("left container"), "nothing left, nothing said: {err}");
}

/// A running stack for the fake: web-1 serves; after `--scale`, web-2 has started beside it;
/// the template's worker and scheduler run one container each.
const RUNNING_STACK: [(&str, &str); 3] = [
    ("FAKE_RUNNING", "shop-prod-web-1\\n"),
    ("FAKE_WEB", "shop-prod-web-1\\nshop-prod-web-2\\n"),
    ("FAKE_PROCESSES", "worker beat"),
];

/// The calls of a deploy after its one-offs (and the look at the image whose release steps
/// they were), for comparison: the compose base as `COMPOSE`.
fn deploy_calls(sandbox: &Sandbox) -> Vec<String> {
    let compose = format!("ROOT|WEB_IMAGE=shop-web|{}", base_v2("prod"));
    let calls = sandbox.calls();
    let last_one_off = calls.iter().rposition(|c| c.contains("docker rm --force NAME")).unwrap();
    let after = calls[last_one_off + 1..].iter().skip_while(|c| **c == IMAGE_ID);
    after.map(|c| c.replace(&compose, "COMPOSE")).collect()
}

/// How a redeploy lists nginx's workers, as the fake records it and as `--dry-run` quotes it.
const WORKER_PIDS: &str = "cd /proc && for f in [0-9]*/cmdline; do grep -qs ^nginx:.worker $f && echo $f; done; exit 0";
const WORKER_PIDS_QUOTED: &str =
    "'cd /proc && for f in [0-9]*/cmdline; do grep -qs ''^nginx:.worker $f && echo $f; done; exit 0'";

/// How `prod` reads the web image's id (what it deploys, what its release steps ran for).
const IMAGE_ID: &str = "ROOT|WEB_IMAGE=|docker image inspect --format {{.Id}} shop-web";

#[test]
fn prod_against_a_running_stack_starts_beside_it_switches_nginx_then_drains() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["prod", "--no-build"], &RUNNING_STACK);
    assert!(output.status.success(), "{}", stderr(&output));
    let labels = "--filter label=com.docker.compose.project=shop-prod --filter label=com.docker.compose.service";
    let running = |service: &str| {
        format!("ROOT|WEB_IMAGE=|docker ps --filter status=running {labels}={service} --format {{{{.Names}}}}")
    };
    let all = |service: &str| format!("ROOT|WEB_IMAGE=|docker ps --all {labels}={service} --format {{{{.Names}}}}");
    let health = |names: &str| INSPECT.replace(" c1 c2 c3", &format!(" {names}"));
    let steady = |names: &str| {
        format!(
            "ROOT|WEB_IMAGE=|docker inspect --format {{{{.Name}}}} {{{{.State.Status}}}} {{{{.RestartCount}}}} {{{{if .Config.Healthcheck}}}}checked{{{{else}}}}unchecked{{{{end}}}} {names}"
        )
    };
    let want = [
        running("web"),
        running("nginx"),
        all("web"),
        "ROOT|WEB_IMAGE=|docker inspect --format {{.Image}} shop-prod-web-1".into(),
        running("worker"),
        "COMPOSE up --detach --no-deps --no-build --no-recreate --scale web=2 web".into(),
        all("web"),
        // The new worker starts beside the old one and comes up with the new web, before the switch.
        all("worker"),
        "COMPOSE up --detach --no-deps --no-build --no-recreate --scale worker=2 worker".into(),
        all("worker"),
        health("shop-prod-worker-2 shop-prod-web-2"),
        steady("shop-prod-worker-2 shop-prod-web-2"),
        health("shop-prod-web-2"),
        format!("COMPOSE exec -T nginx sh -c {WORKER_PIDS}"),
        "COMPOSE exec -T nginx nginx -t -q".into(),
        "COMPOSE exec -T nginx nginx -s reload".into(),
        // The worker of before the reload is gone at the first look.
        format!("COMPOSE exec -T nginx sh -c {WORKER_PIDS}"),
        "ROOT|WEB_IMAGE=|docker stop shop-prod-web-1".into(),
        "ROOT|WEB_IMAGE=|docker rm shop-prod-web-1".into(),
        // The old worker finishes its tasks within its grace period; the scheduler is stopped
        // before its successor starts.
        "ROOT|WEB_IMAGE=|docker stop -t 60 shop-prod-worker-1".into(),
        "ROOT|WEB_IMAGE=|docker rm shop-prod-worker-1".into(),
        all("beat"),
        "ROOT|WEB_IMAGE=|docker stop -t 10 shop-prod-beat-1".into(),
        "COMPOSE up --detach --no-deps --no-build --force-recreate beat".into(),
        all("beat"),
        health("shop-prod-beat-1"),
        // Without a healthcheck, it must be seen running a moment later.
        steady("shop-prod-beat-1"),
        steady("shop-prod-beat-1"),
        "ROOT|WEB_IMAGE=|docker tag sha256:0ld shop-web:previous".into(),
        "COMPOSE config --services".into(),
        "COMPOSE up --detach --no-build --no-deps --remove-orphans nginx".into(),
        "COMPOSE ps -q".into(),
        INSPECT.into(),
    ];
    assert_eq!(deploy_calls(&sandbox), want);
    let upstream = fs::read_to_string(sandbox.root().join(".stack/nginx/django_web.conf")).unwrap();
    assert!(upstream.ends_with("\n    server shop-prod-web-2:8000;\n}\n"), "{upstream}");
}

#[test]
fn a_new_version_that_never_becomes_healthy_is_removed_and_never_switched_to() {
    let sandbox = shop(Compose::V2);
    let mut env = RUNNING_STACK.to_vec();
    env.push(("FAKE_INSPECT", "web running unhealthy /shop-prod-web-2"));
    let output = sandbox.output(&["prod", "--no-build", "--wait-timeout", "0"], &env);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let line = "error: the new version was not switched to (shop-prod-web-2, shop-prod-worker-2 removed); shop-prod-web-1 still serve(s): container(s) shop-prod-web-2 not healthy after 0s: see the logs above, or raise --wait-timeout";
    assert_eq!(err.lines().last(), Some(line), "{err}");
    assert!(err.contains("last log lines of shop-prod-web-2"), "{err}");
    assert_not_switched(&sandbox, "shop-prod-web-2");
}

/// A redeploy stopped before its switch: the last calls show the logs of `failed`, then
/// remove the new web and worker containers; nginx was never pointed at them, nothing old stopped.
fn assert_not_switched(sandbox: &Sandbox, failed: &str) {
    let calls = deploy_calls(sandbox);
    let tail: Vec<&str> = calls[calls.len() - 2..].iter().map(String::as_str).collect();
    let logs = format!("ROOT|WEB_IMAGE=|docker logs --tail 100 {failed}");
    assert_eq!(tail, [logs.as_str(), "ROOT|WEB_IMAGE=|docker rm --force shop-prod-web-2 shop-prod-worker-2"]);
    assert!(!calls.iter().any(|c| c.contains("reload") || c.contains("docker stop")), "{calls:#?}");
    assert!(!sandbox.root().join(".stack/nginx/django_web.conf").exists(), "nginx was pointed at the new version");
}

#[test]
fn a_new_worker_that_keeps_restarting_fails_the_redeploy_before_the_switch() {
    let sandbox = shop(Compose::V2);
    let mut env = RUNNING_STACK.to_vec();
    env.push(("FAKE_UNSTEADY", "shop-prod-worker-2"));
    let output = sandbox.output(&["prod", "--no-build"], &env);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let line = "error: the new version was not switched to (shop-prod-web-2, shop-prod-worker-2 removed); shop-prod-web-1 still serve(s): container(s) shop-prod-worker-2 stopped or restarted after starting: see their logs above";
    assert_eq!(err.lines().last(), Some(line), "{err}");
    assert_not_switched(&sandbox, "shop-prod-worker-2");
}

#[test]
fn rollback_retags_the_previous_image_and_deploys_it_without_building_or_migrating() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["prod", "--rollback"], &RUNNING_STACK);
    assert!(output.status.success(), "{}", stderr(&output));
    let calls = sandbox.calls();
    // After the probes (is the engine up, are the ports free, is the stack serving):
    let at = calls.iter().position(|c| c.contains("image inspect")).expect("the previous image is confirmed");
    assert_eq!(calls[at], "ROOT|WEB_IMAGE=|docker image inspect --format {{.Id}} shop-web:previous");
    assert_eq!(calls[at + 1], "ROOT|WEB_IMAGE=|docker tag shop-web:previous shop-web");
    let copy = &calls[at + 2];
    assert!(copy.ends_with("run --name NAME -T --no-deps web cp -R /opt/static/. /app/staticfiles/"), "{copy}");
    assert!(!calls.iter().any(|c| c.contains(" build") || c.contains("migrate")), "{calls:#?}");
    assert!(calls.iter().any(|c| c.contains("--scale web=2 web")), "{calls:#?}");
}

#[test]
fn rollback_without_a_previous_image_says_where_it_comes_from() {
    let sandbox = shop(Compose::V2);
    let output = sandbox.output(&["prod", "--rollback"], &[("FAKE_FAIL_ON", "shop-web:previous")]);
    assert_eq!(output.status.code(), Some(1));
    let line = "error: there is no shop-web:previous to roll back to: a redeploy of the running stack keeps the image it replaces under that tag: `cd ROOT && docker image inspect --format '{{.Id}}' shop-web:previous` failed with exit code 1\n";
    let err = stderr(&output).replace(&sandbox.root().display().to_string(), "ROOT");
    assert_eq!(err.lines().last(), Some(line.trim_end()), "{err}");
    assert!(
        !sandbox.calls().iter().any(|c| c.contains(" tag ") || c.contains(" run ")),
        "went on: {:#?}",
        sandbox.calls()
    );
}

#[test]
fn ctrl_c_during_a_redeploy_removes_the_new_containers_and_leaves_the_old_serving() {
    let sandbox = shop(Compose::V2);
    let mut env = RUNNING_STACK.to_vec();
    env.push(("FAKE_INSPECT", "web running starting /shop-prod-web-2"));
    let output = interrupt_when(&sandbox, &["prod", "--no-build", "--wait-timeout", "60"], &env, |calls| {
        calls.iter().any(|c| c.contains("compose.service") && c.ends_with(" shop-prod-web-2"))
    });
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let calls = sandbox.calls();
    let removed = "ROOT|WEB_IMAGE=|docker rm --force shop-prod-web-2 shop-prod-worker-2";
    assert_eq!(calls.last().map(String::as_str), Some(removed), "the new web and worker are removed");
    assert!(!calls.iter().any(|c| c.contains("reload") || c.contains("docker stop")), "{calls:#?}");
}

#[test]
fn a_failing_migration_on_a_running_stack_stops_before_the_switch_and_says_the_old_one_serves() {
    let sandbox = shop(Compose::V2);
    let mut env = RUNNING_STACK.to_vec();
    env.push(("FAKE_FAIL_ON", "migrate"));
    let output = sandbox.output(&["prod", "--no-build"], &env);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let error = err.lines().last().unwrap_or_default();
    assert!(
        error.starts_with("error: the deploy stopped before its switch and the running version still serves: `cd "),
        "{err}"
    );
    assert!(
        error.ends_with(" /app/staticfiles/'` failed with exit code 1") && error.contains("migrate --noinput"),
        "{err}"
    );
    // Compose's dry run of `up` (what would change) starts nothing.
    let started = |c: &String| c.contains("--scale") || (c.contains(" up ") && !c.contains(" --dry-run up "));
    assert!(!sandbox.calls().iter().any(started), "{:#?}", sandbox.calls());
}
