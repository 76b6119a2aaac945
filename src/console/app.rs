//! The console's state and what every key and every service answer does to
//! it. Pure: `on_key`, `on_response`, `on_tick` and `on_refresh` change the
//! `App` and return the `Request`s to run; nothing here touches a terminal
//! or a database, so the tests drive it with plain values.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::analytics::UnansweredGroup;
use crate::conversations::TenantConversation;
use crate::tenancy::provision::DomainRow;

use super::data::{
    ConversationQuery, CreateStep, Grouping, Request, Response, TenantPage, TenantRow, Transcript,
    Unanswered,
};

/// How many conversations the Conversations screen shows.
pub const LATEST: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Tenants,
    Tenant,
    Domains,
    Conversations,
    Transcript,
    Unanswered,
}

/// A list with a cursor that stays on the rows there are.
#[derive(Debug)]
pub struct List<T> {
    pub items: Vec<T>,
    pub selected: usize,
    /// Loaded at least once (before that the screen says "loading").
    pub loaded: bool,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            selected: 0,
            loaded: false,
        }
    }
}

impl<T> List<T> {
    pub fn set(&mut self, items: Vec<T>) {
        self.items = items;
        self.loaded = true;
        self.selected = self.selected.min(self.items.len().saturating_sub(1));
    }

    pub fn current(&self) -> Option<&T> {
        self.items.get(self.selected)
    }

    fn select_where(&mut self, found: impl Fn(&T) -> bool) {
        if let Some(at) = self.items.iter().position(found) {
            self.selected = at;
        }
    }

    fn step(&mut self, by: isize) {
        let last = self.items.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(by).min(last);
    }
}

/// What a form is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKind {
    NewTenant,
    AddDomain,
    Filter,
    NewFaq {
        tenant: String,
    },
    /// A visitor's question of a transcript filed under a FAQ.
    FileQuestion {
        tenant: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub focus: usize,
    pub error: Option<String>,
    /// Sent and not answered yet: what is happening now.
    pub progress: Option<String>,
}

impl Form {
    fn new(kind: FormKind, fields: &[(&'static str, &str)]) -> Self {
        Self {
            kind,
            fields: fields
                .iter()
                .map(|(label, value)| Field {
                    label,
                    value: value.to_string(),
                })
                .collect(),
            focus: 0,
            error: None,
            progress: None,
        }
    }

    pub fn title(&self) -> &'static str {
        match self.kind {
            FormKind::NewTenant => "New tenant",
            FormKind::AddDomain => "Add a domain",
            FormKind::Filter => "Filter conversations",
            FormKind::NewFaq { .. } => "New FAQ",
            FormKind::FileQuestion { .. } => "File the question under a FAQ",
        }
    }

    fn value(&self, at: usize) -> String {
        self.fields
            .get(at)
            .map(|f| f.value.trim().to_string())
            .unwrap_or_default()
    }
}

/// What a confirmation confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmKind {
    DeleteTenant(String),
    RemoveDomain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub kind: ConfirmKind,
    /// What the operator must type; `None`: `y` confirms.
    pub expected: Option<String>,
    pub typed: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    Help,
    Form(Form),
    Confirm(Confirm),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Info(String),
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelState {
    /// Not asked for yet: loaded when Unanswered first opens.
    Idle,
    Loading,
    Ready,
    Failed(String),
}

/// Whose unanswered questions the Unanswered screen shows, and how grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnansweredOf {
    pub tenant: String,
    pub days: i64,
    pub grouping: Grouping,
}

pub struct App {
    pub screen: Screen,
    /// Where `Esc` goes back to.
    pub history: Vec<Screen>,
    pub modal: Option<Modal>,
    pub status: Option<Status>,
    pub tenants: List<TenantRow>,
    pub tenant_page: Option<TenantPage>,
    pub domains: List<DomainRow>,
    pub conversations: List<TenantConversation>,
    pub query: ConversationQuery,
    pub transcript: Option<Transcript>,
    pub transcript_scroll: u16,
    pub unanswered: List<UnansweredGroup>,
    pub unanswered_for: Option<UnansweredOf>,
    /// The tenant to select when the list comes back (a new one).
    pub select_tenant: Option<String>,
    pub model: ModelState,
    /// Requests in flight (the busy marker in the status bar).
    pub pending: usize,
    /// Advances every tick: the spinner.
    pub frame: usize,
    pub quit: bool,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

fn ctrl(key: &KeyEvent, c: char) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char(c)
}

impl App {
    pub fn new() -> Self {
        Self {
            screen: Screen::Tenants,
            history: Vec::new(),
            modal: None,
            status: None,
            tenants: List::default(),
            tenant_page: None,
            domains: List::default(),
            conversations: List::default(),
            query: ConversationQuery::default(),
            transcript: None,
            transcript_scroll: 0,
            unanswered: List::default(),
            unanswered_for: None,
            select_tenant: None,
            model: ModelState::Idle,
            pending: 0,
            frame: 0,
            quit: false,
        }
    }

    /// The first requests: the screen it opens on.
    pub fn start(&mut self) -> Vec<Request> {
        self.send(vec![Request::Tenants])
    }

    fn send(&mut self, requests: Vec<Request>) -> Vec<Request> {
        self.pending += requests.len();
        requests
    }

    fn info(&mut self, text: impl Into<String>) {
        self.status = Some(Status::Info(text.into()));
    }

    fn error(&mut self, text: impl Into<String>) {
        self.status = Some(Status::Error(text.into()));
    }

    /// The tenant the screen is about: the tenant page's, the transcript's,
    /// the selected conversation's, or the selected tenant.
    pub fn current_tenant(&self) -> Option<String> {
        match self.screen {
            Screen::Tenant => self.tenant_page.as_ref().map(|p| p.tenant.schema.clone()),
            Screen::Transcript => self.transcript.as_ref().map(|t| t.tenant.clone()),
            Screen::Conversations => self.conversations.current().map(|c| c.tenant.to_string()),
            Screen::Domains => self.domains.current().map(|d| d.tenant.clone()),
            Screen::Unanswered => self.unanswered_for.as_ref().map(|u| u.tenant.clone()),
            Screen::Tenants => None,
        }
        .or_else(|| self.tenants.current().map(|t| t.tenant.schema.clone()))
    }

    fn go(&mut self, screen: Screen) {
        if self.screen != screen {
            self.history.push(self.screen);
            self.screen = screen;
        }
    }

    /// `1`, `2`, `3`: a top-level screen, with a fresh history.
    fn go_top(&mut self, screen: Screen) -> Vec<Request> {
        self.history.clear();
        if screen != Screen::Tenants {
            self.history.push(Screen::Tenants);
        }
        self.screen = screen;
        let request = self.reload();
        self.send(request)
    }

    fn back(&mut self) {
        if let Some(previous) = self.history.pop() {
            self.screen = previous;
        }
    }

    /// The request that reloads the current screen.
    fn reload(&self) -> Vec<Request> {
        match self.screen {
            Screen::Tenants => vec![Request::Tenants],
            Screen::Tenant => self
                .tenant_page
                .as_ref()
                .map(|p| Request::TenantPage(p.tenant.schema.clone()))
                .into_iter()
                .collect(),
            Screen::Domains => vec![Request::Domains],
            Screen::Conversations => vec![Request::Conversations(self.query.clone())],
            Screen::Transcript => self
                .transcript
                .as_ref()
                .map(|t| Request::Transcript {
                    tenant: t.tenant.clone(),
                    id: t.id,
                })
                .into_iter()
                .collect(),
            Screen::Unanswered => self
                .unanswered_for
                .as_ref()
                .map(|u| Request::Unanswered(u.tenant.clone()))
                .into_iter()
                .collect(),
        }
    }

    fn open_unanswered(&mut self, tenant: String) -> Vec<Request> {
        self.go(Screen::Unanswered);
        if self.unanswered_for.as_ref().map(|u| &u.tenant) != Some(&tenant) {
            self.unanswered = List::default();
            self.unanswered_for = None;
        }
        let mut requests = self.send(vec![Request::Unanswered(tenant)]);
        // Not counted as pending: loading may take a while and must not
        // hold back the Conversations screen's refresh.
        if self.model == ModelState::Idle {
            self.model = ModelState::Loading;
            requests.push(Request::LoadModel);
        }
        requests
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        if ctrl(&key, 'c') {
            self.quit = true;
            return vec![];
        }
        match self.modal.take() {
            Some(Modal::Help) => {
                // Any key closes the help; `q` still quits.
                if key.code == KeyCode::Char('q') {
                    self.quit = true;
                }
                vec![]
            }
            Some(Modal::Form(form)) => self.form_key(form, key),
            Some(Modal::Confirm(confirm)) => self.confirm_key(confirm, key),
            None => self.screen_key(key),
        }
    }

    fn screen_key(&mut self, key: KeyEvent) -> Vec<Request> {
        match key.code {
            KeyCode::Char('q') => {
                self.quit = true;
                return vec![];
            }
            KeyCode::Char('?') => {
                self.modal = Some(Modal::Help);
                return vec![];
            }
            KeyCode::Esc => {
                self.back();
                return vec![];
            }
            KeyCode::Char('1') => return self.go_top(Screen::Tenants),
            KeyCode::Char('2') => return self.go_top(Screen::Domains),
            KeyCode::Char('3') => return self.go_top(Screen::Conversations),
            KeyCode::Char('4') => {
                return match self.current_tenant() {
                    Some(tenant) => self.open_unanswered(tenant),
                    None => {
                        self.error("no tenant to show: create one first");
                        vec![]
                    }
                };
            }
            KeyCode::Char('r') => {
                let request = self.reload();
                self.info("refreshing");
                return self.send(request);
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::PageUp => self.move_cursor(-10),
            KeyCode::PageDown => self.move_cursor(10),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_cursor(isize::MAX / 2),
            _ => {}
        }
        match self.screen {
            Screen::Tenants => self.tenants_key(key),
            Screen::Tenant => {
                let Some(tenant) = self.tenant_page.as_ref().map(|p| p.tenant.clone()) else {
                    return vec![];
                };
                match key.code {
                    KeyCode::Char('u') => self.open_unanswered(tenant.schema),
                    KeyCode::Char('s') => self.send(vec![Request::SetActive {
                        schema: tenant.schema,
                        active: !tenant.is_active,
                    }]),
                    _ => vec![],
                }
            }
            Screen::Domains => self.domains_key(key),
            Screen::Conversations => self.conversations_key(key),
            Screen::Transcript => self.transcript_key(key),
            Screen::Unanswered => self.unanswered_key(key),
        }
    }

    fn move_cursor(&mut self, by: isize) {
        match self.screen {
            Screen::Tenants => self.tenants.step(by),
            Screen::Domains => self.domains.step(by),
            Screen::Conversations => self.conversations.step(by),
            Screen::Unanswered => self.unanswered.step(by),
            Screen::Transcript => {
                let by = by.clamp(-1000, 1000) as i32;
                self.transcript_scroll =
                    (i32::from(self.transcript_scroll) + by).clamp(0, 1000) as u16;
            }
            Screen::Tenant => {}
        }
    }

    fn tenants_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let selected = self.tenants.current().map(|t| t.tenant.clone());
        match (key.code, selected) {
            (KeyCode::Char('n'), _) => {
                self.modal = Some(Modal::Form(Form::new(
                    FormKind::NewTenant,
                    &[("Schema", ""), ("Name", "")],
                )));
                vec![]
            }
            (KeyCode::Char('d'), Some(tenant)) => {
                self.modal = Some(Modal::Confirm(Confirm {
                    kind: ConfirmKind::DeleteTenant(tenant.schema.clone()),
                    expected: Some(tenant.schema),
                    typed: String::new(),
                    error: None,
                }));
                vec![]
            }
            (KeyCode::Char('s'), Some(tenant)) => self.send(vec![Request::SetActive {
                schema: tenant.schema,
                active: !tenant.is_active,
            }]),
            (KeyCode::Enter, Some(tenant)) => {
                if self.tenant_page.as_ref().map(|p| &p.tenant.schema) != Some(&tenant.schema) {
                    self.tenant_page = None;
                }
                self.go(Screen::Tenant);
                self.send(vec![Request::TenantPage(tenant.schema)])
            }
            (KeyCode::Char('u'), Some(tenant)) => self.open_unanswered(tenant.schema),
            _ => vec![],
        }
    }

    fn domains_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let selected = self.domains.current().cloned();
        match (key.code, selected) {
            (KeyCode::Char('a'), _) => {
                let tenant = self
                    .tenants
                    .current()
                    .map(|t| t.tenant.schema.clone())
                    .unwrap_or_default();
                self.modal = Some(Modal::Form(Form::new(
                    FormKind::AddDomain,
                    &[("Domain", ""), ("Tenant", &tenant)],
                )));
                vec![]
            }
            (KeyCode::Char('d'), Some(domain)) => {
                self.modal = Some(Modal::Confirm(Confirm {
                    kind: ConfirmKind::RemoveDomain(domain.domain),
                    expected: None,
                    typed: String::new(),
                    error: None,
                }));
                vec![]
            }
            (KeyCode::Char('p'), Some(domain)) if !domain.is_primary => {
                self.send(vec![Request::MakePrimary(domain.domain)])
            }
            (KeyCode::Char('p'), Some(domain)) => {
                self.info(format!("{} is already primary", domain.domain));
                vec![]
            }
            _ => vec![],
        }
    }

    fn conversations_key(&mut self, key: KeyEvent) -> Vec<Request> {
        match key.code {
            KeyCode::Char('/') => {
                let (tenant, text) = (self.query.tenant.clone(), self.query.text.clone());
                self.modal = Some(Modal::Form(Form::new(
                    FormKind::Filter,
                    &[("Tenant", &tenant), ("Text", &text)],
                )));
                vec![]
            }
            KeyCode::Char('u') => {
                self.query.unanswered_only = !self.query.unanswered_only;
                self.conversations.selected = 0;
                self.send(vec![Request::Conversations(self.query.clone())])
            }
            KeyCode::Char('c') => {
                self.query = ConversationQuery::default();
                self.conversations.selected = 0;
                self.send(vec![Request::Conversations(self.query.clone())])
            }
            KeyCode::Enter => match self.conversations.current() {
                Some(c) => {
                    let request = Request::Transcript {
                        tenant: c.tenant.to_string(),
                        id: c.conversation.id,
                    };
                    self.transcript = None;
                    self.transcript_scroll = 0;
                    self.go(Screen::Transcript);
                    self.send(vec![request])
                }
                None => vec![],
            },
            _ => vec![],
        }
    }

    /// `f`: file a visitor's question under a FAQ, the bot's correction.
    /// The form starts with the last question the bot did not answer (else
    /// the last question) and the FAQ of the answer after it, if any.
    fn transcript_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let Some(t) = &self.transcript else {
            return vec![];
        };
        if key.code != KeyCode::Char('f') {
            return vec![];
        }
        let asked: Vec<(&str, Option<i64>)> = t
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == "visitor")
            .map(|(i, m)| {
                let faq = t
                    .messages
                    .get(i + 1)
                    .filter(|r| r.role == "bot")
                    .and_then(|r| r.faq_id);
                (m.text.as_str(), faq)
            })
            .collect();
        let Some((question, faq)) = asked
            .iter()
            .rev()
            .find(|(_, faq)| faq.is_none())
            .or(asked.last())
            .copied()
        else {
            self.error("this conversation has no visitor question");
            return vec![];
        };
        let faq = faq.map(|id| id.to_string()).unwrap_or_default();
        let mut form = Form::new(
            FormKind::FileQuestion {
                tenant: t.tenant.clone(),
            },
            &[("Question", question), ("FAQ id", &faq)],
        );
        form.focus = 1;
        self.modal = Some(Modal::Form(form));
        vec![]
    }

    fn unanswered_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let (Some(group), Some(for_tenant)) = (self.unanswered.current(), &self.unanswered_for)
        else {
            return vec![];
        };
        if key.code == KeyCode::Char('a') {
            let tenant = for_tenant.tenant.clone();
            let question = group.question.clone();
            let mut form = Form::new(
                FormKind::NewFaq { tenant },
                &[("Question", &question), ("Answer", "")],
            );
            form.focus = 1;
            self.modal = Some(Modal::Form(form));
        }
        vec![]
    }

    fn form_key(&mut self, mut form: Form, key: KeyEvent) -> Vec<Request> {
        if form.progress.is_some() {
            // Sent: wait for the answer (Esc hides the form; the work goes on).
            if key.code != KeyCode::Esc {
                self.modal = Some(Modal::Form(form));
            }
            return vec![];
        }
        let count = form.fields.len();
        match key.code {
            KeyCode::Esc => return vec![],
            KeyCode::Tab | KeyCode::Down => form.focus = (form.focus + 1) % count,
            KeyCode::BackTab | KeyCode::Up => form.focus = (form.focus + count - 1) % count,
            KeyCode::Backspace => {
                if let Some(field) = form.fields.get_mut(form.focus) {
                    field.value.pop();
                }
            }
            KeyCode::Enter => return self.submit(form),
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if let Some(field) = form.fields.get_mut(form.focus) {
                    field.value.push(c);
                }
                form.error = None;
            }
            _ => {}
        }
        self.modal = Some(Modal::Form(form));
        vec![]
    }

    fn submit(&mut self, mut form: Form) -> Vec<Request> {
        let (first, second) = (form.value(0), form.value(1));
        let request = match &form.kind {
            FormKind::Filter => {
                self.query.tenant = first;
                self.query.text = second;
                self.conversations.selected = 0;
                return self.send(vec![Request::Conversations(self.query.clone())]);
            }
            FormKind::NewTenant if first.is_empty() || second.is_empty() => {
                Err("give both the schema and the name")
            }
            FormKind::NewTenant => Ok(Request::CreateTenant {
                schema: first,
                name: second,
            }),
            FormKind::AddDomain if first.is_empty() || second.is_empty() => {
                Err("give both the domain and the tenant's schema")
            }
            FormKind::AddDomain => Ok(Request::AddDomain {
                domain: first,
                tenant: second,
            }),
            FormKind::NewFaq { .. } if first.is_empty() || second.is_empty() => {
                Err("give both the question and its answer")
            }
            FormKind::NewFaq { tenant } => Ok(Request::CreateFaq {
                tenant: tenant.clone(),
                question: first,
                answer: second,
            }),
            FormKind::FileQuestion { .. } if first.is_empty() => Err("give the question"),
            FormKind::FileQuestion { tenant } => match second.parse::<i64>() {
                Ok(faq_id) => Ok(Request::FileQuestion {
                    tenant: tenant.clone(),
                    faq_id,
                    question: first,
                }),
                Err(_) => Err("the FAQ id is a number (the transcript shows \"FAQ n\")"),
            },
        };
        match request {
            Ok(request) => {
                form.error = None;
                form.progress = Some("sending".into());
                self.modal = Some(Modal::Form(form));
                self.send(vec![request])
            }
            Err(message) => {
                form.error = Some(message.into());
                self.modal = Some(Modal::Form(form));
                vec![]
            }
        }
    }

    fn confirm_key(&mut self, mut confirm: Confirm, key: KeyEvent) -> Vec<Request> {
        let request = |kind: &ConfirmKind| match kind {
            ConfirmKind::DeleteTenant(schema) => Request::DeleteTenant(schema.clone()),
            ConfirmKind::RemoveDomain(domain) => Request::RemoveDomain(domain.clone()),
        };
        match (&confirm.expected, key.code) {
            (_, KeyCode::Esc) => return vec![],
            (None, KeyCode::Char('y')) => return self.send(vec![request(&confirm.kind)]),
            (None, KeyCode::Char('n')) => return vec![],
            (Some(expected), KeyCode::Enter) => {
                if confirm.typed.trim() == expected {
                    return self.send(vec![request(&confirm.kind)]);
                }
                confirm.error = Some(format!("that is not {expected:?}; nothing was deleted"));
            }
            (Some(_), KeyCode::Backspace) => {
                confirm.typed.pop();
            }
            (Some(_), KeyCode::Char(c)) => {
                confirm.typed.push(c);
                confirm.error = None;
            }
            _ => {}
        }
        self.modal = Some(Modal::Confirm(confirm));
        vec![]
    }

    /// Every quarter second: the spinner.
    pub fn on_tick(&mut self) {
        self.frame = self.frame.wrapping_add(1);
    }

    /// Every few seconds: the Conversations screen refreshes itself.
    pub fn on_refresh(&mut self) -> Vec<Request> {
        if self.screen == Screen::Conversations && self.pending == 0 && self.modal.is_none() {
            self.send(vec![Request::Conversations(self.query.clone())])
        } else {
            vec![]
        }
    }

    /// The form still open, if it is of this kind.
    fn open_form(&mut self, kind: impl Fn(&FormKind) -> bool) -> Option<&mut Form> {
        match &mut self.modal {
            Some(Modal::Form(form)) if kind(&form.kind) => Some(form),
            _ => None,
        }
    }

    /// A failed form request: the form shows why and can be sent again.
    fn form_failed(&mut self, kind: impl Fn(&FormKind) -> bool, message: String) {
        match self.open_form(kind) {
            Some(form) => {
                form.progress = None;
                form.error = Some(message);
            }
            None => self.error(message),
        }
    }

    fn close_form(&mut self, kind: impl Fn(&FormKind) -> bool) {
        if self.open_form(kind).is_some() {
            self.modal = None;
        }
    }

    pub fn on_response(&mut self, response: Response) -> Vec<Request> {
        if !matches!(response, Response::CreateProgress(_) | Response::Model(_)) {
            self.pending = self.pending.saturating_sub(1);
        }
        let is_new_tenant = |k: &FormKind| *k == FormKind::NewTenant;
        let is_add_domain = |k: &FormKind| *k == FormKind::AddDomain;
        let is_new_faq = |k: &FormKind| matches!(k, FormKind::NewFaq { .. });
        let is_file_question = |k: &FormKind| matches!(k, FormKind::FileQuestion { .. });
        match response {
            Response::Tenants(Ok(rows)) => {
                self.tenants.set(rows);
                if let Some(schema) = self.select_tenant.take() {
                    self.tenants.select_where(|t| t.tenant.schema == schema);
                }
            }
            Response::CreateProgress(step) => {
                if let Some(form) = self.open_form(is_new_tenant) {
                    form.progress = Some(
                        match step {
                            CreateStep::Checking => "checking the names",
                            CreateStep::Migrating => "creating the schema and migrating it",
                        }
                        .into(),
                    );
                }
            }
            Response::TenantCreated(Ok(schema)) => {
                self.close_form(is_new_tenant);
                self.info(format!("created tenant {schema}"));
                // Select the new tenant once the list is back.
                self.select_tenant = Some(schema);
                return self.send(vec![Request::Tenants]);
            }
            Response::TenantCreated(Err(e)) => self.form_failed(is_new_tenant, e),
            Response::TenantDeleted(Ok(schema)) => {
                self.info(format!("deleted tenant {schema}"));
                if self.tenant_page.as_ref().map(|p| &p.tenant.schema) == Some(&schema) {
                    self.tenant_page = None;
                }
                return self.send(vec![Request::Tenants]);
            }
            Response::ActiveSet(Ok((schema, active))) => {
                let word = if active { "resumed" } else { "suspended" };
                self.info(format!("{word} {schema}"));
                let mut requests = vec![Request::Tenants];
                if self.screen == Screen::Tenant {
                    requests.push(Request::TenantPage(schema));
                }
                return self.send(requests);
            }
            Response::TenantPage(Ok(page)) => self.tenant_page = Some(*page),
            Response::Domains(Ok(rows)) => self.domains.set(rows),
            Response::DomainChanged(Ok(message)) => {
                self.close_form(is_add_domain);
                self.info(message);
                return self.send(vec![Request::Domains, Request::Tenants]);
            }
            Response::DomainChanged(Err(e)) => self.form_failed(is_add_domain, e),
            // An answer to a filter since changed: the newer one is on its way.
            Response::Conversations(query, Ok(rows)) if query == self.query => {
                self.conversations.set(rows)
            }
            Response::Conversations(_, Ok(_)) => {}
            Response::Transcript(Ok(transcript)) => self.transcript = Some(transcript),
            Response::Model(result) => {
                self.model = match result {
                    Ok(()) => ModelState::Ready,
                    Err(e) => ModelState::Failed(e),
                };
                // Regroup by meaning now that the model is there.
                if self.model == ModelState::Ready
                    && let Some(u) = &self.unanswered_for
                    && u.grouping == Grouping::Wording
                {
                    let tenant = u.tenant.clone();
                    return self.send(vec![Request::Unanswered(tenant)]);
                }
            }
            Response::Unanswered(Ok(Unanswered {
                tenant,
                days,
                groups,
                grouping,
            })) => {
                self.unanswered.set(groups);
                self.unanswered_for = Some(UnansweredOf {
                    tenant,
                    days,
                    grouping,
                });
            }
            Response::FaqCreated(Ok((tenant, question))) => {
                self.close_form(is_new_faq);
                self.info(format!("FAQ added to {tenant}: {question}"));
                return self.send(vec![Request::Unanswered(tenant)]);
            }
            Response::FaqCreated(Err(e)) => self.form_failed(is_new_faq, e),
            Response::QuestionFiled(Ok(text)) => {
                self.close_form(is_file_question);
                self.info(text);
            }
            Response::QuestionFiled(Err(e)) => self.form_failed(is_file_question, e),
            Response::Tenants(Err(e))
            | Response::TenantDeleted(Err(e))
            | Response::ActiveSet(Err(e))
            | Response::TenantPage(Err(e))
            | Response::Domains(Err(e))
            | Response::Conversations(_, Err(e))
            | Response::Transcript(Err(e))
            | Response::Unanswered(Err(e)) => self.error(e),
        }
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::fixtures::{self, ch, key, loaded_app, type_text};

    #[test]
    fn opens_on_tenants_and_asks_for_them() {
        let mut app = App::new();
        assert_eq!(app.start(), vec![Request::Tenants]);
        assert_eq!(app.screen, Screen::Tenants);
        assert_eq!(app.pending, 1);
        app.on_response(Response::Tenants(Ok(fixtures::tenants())));
        assert_eq!(app.pending, 0);
        assert!(app.tenants.loaded);
        assert_eq!(app.tenants.items.len(), 3);
    }

    #[test]
    fn the_cursor_stays_on_the_rows() {
        let mut app = loaded_app();
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.tenants.selected, 0);
        app.on_key(key(KeyCode::Down));
        app.on_key(ch('j'));
        app.on_key(ch('j'));
        assert_eq!(app.tenants.selected, 2);
        app.on_key(ch('k'));
        assert_eq!(app.tenants.selected, 1);
        app.on_key(key(KeyCode::Home));
        assert_eq!(app.tenants.selected, 0);
        app.on_key(key(KeyCode::End));
        assert_eq!(app.tenants.selected, 2);
        // A shorter list pulls the cursor back onto it.
        app.on_response(Response::Tenants(Ok(fixtures::tenants()[..1].to_vec())));
        assert_eq!(app.tenants.selected, 0);
    }

    #[test]
    fn the_new_tenant_form_sends_schema_and_name_and_shows_progress() {
        let mut app = loaded_app();
        assert!(app.on_key(ch('n')).is_empty());
        type_text(&mut app, "zeta");
        app.on_key(key(KeyCode::Tab));
        type_text(&mut app, "Zeta Ltd");
        app.on_key(key(KeyCode::Backspace));
        type_text(&mut app, "d");
        let sent = app.on_key(key(KeyCode::Enter));
        assert_eq!(
            sent,
            vec![Request::CreateTenant {
                schema: "zeta".into(),
                name: "Zeta Ltd".into()
            }]
        );
        // Keys while it is being created are not typed into the form.
        assert!(app.on_key(ch('x')).is_empty());
        app.on_response(Response::CreateProgress(CreateStep::Migrating));
        let Some(Modal::Form(form)) = &app.modal else {
            panic!("the form stays open while the tenant is created")
        };
        assert_eq!(form.fields[1].value, "Zeta Ltd");
        assert_eq!(
            form.progress.as_deref(),
            Some("creating the schema and migrating it")
        );
        let next = app.on_response(Response::TenantCreated(Ok("zeta".into())));
        assert_eq!(next, vec![Request::Tenants]);
        assert_eq!(app.modal, None);
        let mut rows = fixtures::tenants();
        let mut zeta = rows[0].clone();
        zeta.tenant.schema = "zeta".into();
        rows.push(zeta);
        app.on_response(Response::Tenants(Ok(rows)));
        assert_eq!(app.tenants.selected, 3, "the new tenant is selected");
    }

    #[test]
    fn a_refused_tenant_keeps_the_form_with_the_reason() {
        let mut app = loaded_app();
        app.on_key(ch('n'));
        assert!(app.on_key(key(KeyCode::Enter)).is_empty(), "empty fields");
        type_text(&mut app, "acme");
        app.on_key(key(KeyCode::Tab));
        type_text(&mut app, "Again");
        app.on_key(key(KeyCode::Enter));
        app.on_response(Response::TenantCreated(Err(
            "tenant \"acme\" already exists".into(),
        )));
        let Some(Modal::Form(form)) = &app.modal else {
            panic!("the form stays")
        };
        assert_eq!(
            form.error.as_deref(),
            Some("tenant \"acme\" already exists")
        );
        assert_eq!(form.progress, None);
        // Esc cancels the form, and does not leave the screen.
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.modal, None);
        assert_eq!(app.screen, Screen::Tenants);
        assert!(!app.quit);
    }

    #[test]
    fn delete_needs_the_schema_typed() {
        let mut app = loaded_app();
        app.on_key(ch('j'));
        app.on_key(ch('d'));
        type_text(&mut app, "acme");
        assert!(app.on_key(key(KeyCode::Enter)).is_empty(), "wrong name");
        let Some(Modal::Confirm(confirm)) = &app.modal else {
            panic!("still asking")
        };
        assert!(confirm.error.is_some());
        for _ in 0..4 {
            app.on_key(key(KeyCode::Backspace));
        }
        // `q` is typed here, not quit.
        type_text(&mut app, "q");
        assert!(!app.quit);
        app.on_key(key(KeyCode::Backspace));
        type_text(&mut app, "bikeshop");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            vec![Request::DeleteTenant("bikeshop".into())]
        );
        assert_eq!(app.modal, None);
        assert_eq!(
            app.on_response(Response::TenantDeleted(Ok("bikeshop".into()))),
            vec![Request::Tenants]
        );
    }

    #[test]
    fn suspend_toggles_and_enter_opens_the_tenant_page() {
        let mut app = loaded_app();
        assert_eq!(
            app.on_key(ch('s')),
            vec![Request::SetActive {
                schema: "acme".into(),
                active: false
            }]
        );
        app.on_key(ch('j'));
        assert_eq!(
            app.on_key(ch('s')),
            vec![Request::SetActive {
                schema: "bikeshop".into(),
                active: true
            }]
        );
        app.on_key(ch('k'));
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            vec![Request::TenantPage("acme".into())]
        );
        assert_eq!(app.screen, Screen::Tenant);
        app.on_response(Response::TenantPage(Ok(Box::new(fixtures::tenant_page()))));
        let sent = app.on_key(ch('u'));
        assert_eq!(
            sent,
            vec![Request::Unanswered("acme".into()), Request::LoadModel]
        );
        assert_eq!(app.screen, Screen::Unanswered);
        assert_eq!(app.model, ModelState::Loading);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::Tenant);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::Tenants);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::Tenants, "Esc at the top stays");
    }

    #[test]
    fn number_keys_switch_screens_and_load_them() {
        let mut app = loaded_app();
        assert_eq!(app.on_key(ch('2')), vec![Request::Domains]);
        assert_eq!(app.screen, Screen::Domains);
        assert_eq!(
            app.on_key(ch('3')),
            vec![Request::Conversations(ConversationQuery::default())]
        );
        assert_eq!(app.screen, Screen::Conversations);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::Tenants);
        assert_eq!(app.on_key(ch('1')), vec![Request::Tenants]);
        assert_eq!(
            app.on_key(ch('4')),
            vec![Request::Unanswered("acme".into()), Request::LoadModel]
        );
        // The model is asked for once.
        app.on_key(key(KeyCode::Esc));
        assert_eq!(
            app.on_key(ch('4')),
            vec![Request::Unanswered("acme".into())]
        );
    }

    #[test]
    fn domains_add_remove_and_make_primary() {
        let mut app = loaded_app();
        app.on_key(ch('2'));
        app.on_response(Response::Domains(Ok(fixtures::domains())));
        app.on_key(ch('a'));
        type_text(&mut app, "shop.acme.test");
        let Some(Modal::Form(form)) = &app.modal else {
            panic!("add form")
        };
        assert_eq!(form.fields[1].value, "acme", "the selected tenant");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            vec![Request::AddDomain {
                domain: "shop.acme.test".into(),
                tenant: "acme".into()
            }]
        );
        assert_eq!(
            app.on_response(Response::DomainChanged(Ok("added".into()))),
            vec![Request::Domains, Request::Tenants]
        );
        assert_eq!(app.modal, None);
        assert!(
            app.on_key(ch('p')).is_empty(),
            "acme.test is primary already"
        );
        app.on_key(key(KeyCode::End));
        assert_eq!(
            app.on_key(ch('p')),
            vec![Request::MakePrimary("www.acme.test".into())]
        );
        app.on_key(ch('d'));
        assert!(app.on_key(ch('n')).is_empty());
        assert_eq!(app.modal, None);
        app.on_key(ch('d'));
        assert_eq!(
            app.on_key(ch('y')),
            vec![Request::RemoveDomain("www.acme.test".into())]
        );
    }

    #[test]
    fn conversations_filter_toggle_refresh_and_transcript() {
        let mut app = loaded_app();
        app.on_key(ch('3'));
        app.on_response(Response::Conversations(
            app.query.clone(),
            Ok(fixtures::conversations()),
        ));
        assert_eq!(
            app.on_refresh(),
            vec![Request::Conversations(ConversationQuery::default())],
            "refreshes itself"
        );
        app.on_response(Response::Conversations(
            app.query.clone(),
            Ok(fixtures::conversations()),
        ));
        app.on_key(ch('/'));
        type_text(&mut app, "acme");
        app.on_key(key(KeyCode::Tab));
        type_text(&mut app, "open");
        let want = ConversationQuery {
            tenant: "acme".into(),
            text: "open".into(),
            unanswered_only: false,
        };
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            vec![Request::Conversations(want.clone())]
        );
        assert!(app.on_refresh().is_empty(), "not while a load is pending");
        // The answer to the old, unfiltered query is not shown.
        app.on_response(Response::Conversations(
            ConversationQuery::default(),
            Ok(vec![]),
        ));
        assert_eq!(app.conversations.items.len(), 3);
        app.on_response(Response::Conversations(
            app.query.clone(),
            Ok(fixtures::conversations()),
        ));
        let sent = app.on_key(ch('u'));
        assert_eq!(
            sent,
            vec![Request::Conversations(ConversationQuery {
                unanswered_only: true,
                ..want
            })]
        );
        app.on_response(Response::Conversations(
            app.query.clone(),
            Ok(fixtures::conversations()),
        ));
        app.on_key(ch('j'));
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            vec![Request::Transcript {
                tenant: "bikeshop".into(),
                id: 3
            }]
        );
        assert_eq!(app.screen, Screen::Transcript);
        assert!(app.on_refresh().is_empty(), "only the list refreshes");
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::Conversations);
        assert_eq!(
            app.on_key(ch('c')),
            vec![Request::Conversations(ConversationQuery::default())]
        );
    }

    #[test]
    fn an_unanswered_group_becomes_a_faq() {
        let mut app = loaded_app();
        app.on_key(ch('4'));
        app.on_response(Response::Unanswered(Ok(fixtures::unanswered())));
        app.on_key(ch('j'));
        app.on_key(ch('a'));
        let Some(Modal::Form(form)) = &app.modal else {
            panic!("answer form")
        };
        assert_eq!(form.fields[0].value, "Is there parking?");
        assert_eq!(form.focus, 1, "straight to the answer");
        type_text(&mut app, "Yes, behind the shop.");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            vec![Request::CreateFaq {
                tenant: "acme".into(),
                question: "Is there parking?".into(),
                answer: "Yes, behind the shop.".into()
            }]
        );
        assert_eq!(
            app.on_response(Response::FaqCreated(Ok((
                "acme".into(),
                "Is there parking?".into()
            )))),
            vec![Request::Unanswered("acme".into())]
        );
        assert_eq!(app.modal, None);
    }

    #[test]
    fn a_transcripts_question_is_filed_under_a_faq() {
        let mut app = loaded_app();
        app.on_key(ch('3'));
        app.screen = Screen::Transcript;
        app.on_response(Response::Transcript(Ok(fixtures::transcript())));
        app.on_key(ch('f'));
        let Some(Modal::Form(form)) = &app.modal else {
            panic!("the filing form")
        };
        // The question the bot could not answer, and no FAQ yet.
        assert_eq!(form.fields[0].value, "Do you sell gift cards?");
        assert_eq!(form.fields[1].value, "");
        assert_eq!(form.focus, 1);
        type_text(&mut app, "x");
        assert!(app.on_key(key(KeyCode::Enter)).is_empty(), "not a number");
        let Some(Modal::Form(form)) = &app.modal else {
            panic!("still open")
        };
        assert!(form.error.as_deref().unwrap_or("").contains("number"));
        app.on_key(key(KeyCode::Backspace));
        type_text(&mut app, "7");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            vec![Request::FileQuestion {
                tenant: "acme".into(),
                faq_id: 7,
                question: "Do you sell gift cards?".into()
            }]
        );
        app.on_response(Response::QuestionFiled(Ok("filed under FAQ 7".into())));
        assert_eq!(app.modal, None);
    }

    #[test]
    fn a_loaded_model_regroups_by_meaning() {
        let mut app = loaded_app();
        app.on_key(ch('4'));
        let mut by_wording = fixtures::unanswered();
        by_wording.grouping = Grouping::Wording;
        app.on_response(Response::Unanswered(Ok(by_wording)));
        assert_eq!(
            app.on_response(Response::Model(Ok(()))),
            vec![Request::Unanswered("acme".into())]
        );
        assert_eq!(app.model, ModelState::Ready);
    }

    #[test]
    fn help_quit_and_errors() {
        let mut app = loaded_app();
        app.on_key(ch('?'));
        assert_eq!(app.modal, Some(Modal::Help));
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.modal, None);
        assert!(!app.quit);
        app.on_response(Response::Domains(Err("the database is busy".into())));
        assert_eq!(
            app.status,
            Some(Status::Error("the database is busy".into()))
        );
        app.on_key(ch('q'));
        assert!(app.quit);
        let mut app = loaded_app();
        app.on_key(ch('n'));
        app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(app.quit, "Ctrl-C quits even in a form");
    }
}
