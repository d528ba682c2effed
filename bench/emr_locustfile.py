"""Locust users of bench/emr.py: registrars and doctors working the pages as a browser would.

Every request is named by its page (not its ids), so the table has one row per page. Each user
signs in once through the sign-in form (the demo accounts, bench/emr.py makes them) and reads
the CSRF token from the page, as htmx does.
"""

from __future__ import annotations

import os
import random
import re
import time
from urllib.parse import unquote

from locust import HttpUser, between, task

from benhan.auth.demo_accounts import DEMO_PASSWORD

REFERENCE = "GET /static/forms.css"
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
LOGIN_TOKEN = re.compile(r'name="token" value="([^"]+)"')
VISIT = re.compile(r'href="/visit/([0-9a-f-]{36})"')
PATIENT_PAGE = re.compile(r"/desk/patient/([0-9a-f-]{36})")
CLINIC = re.compile(r'name="clinic" value="([0-9a-f-]{36})"')
DRUG = re.compile(r"drug=([^&\"#]+)")
CHART_PATIENT = os.environ.get("BENCH_CHART_PATIENT", "")
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô")
GIVEN = ("Thị Hương", "Văn Nam", "Thị Lan", "Văn Hùng", "Thị Mai", "Minh Tuấn", "Thu Trang")
TYPED = ("ng", "nguyen", "nguyen thi", "nguyen thi h", "tran van 19", "le thi lan")
DIAGNOSES = ("J02.9", "J06.9", "I10", "E11.9", "K29.7", "A09")
LABS = ("23.9036.9036",)  # Định lượng Glucose máu


class Staff(HttpUser):
    abstract = True
    wait_time = between(2, 6)  # a person reads the page, types, then clicks again
    username = ""

    def on_start(self) -> None:
        form = self.client.get("/login", name="GET /login").text
        token = LOGIN_TOKEN.search(form)
        assert token, "no sign-in form"
        data = {"username": self.username, "password": DEMO_PASSWORD, "token": token[1]}
        self.client.post("/login", data={**data, "next": "/"}, name="POST /login")
        home = self.client.get("/", name="GET /").text
        csrf = CSRF.search(home)
        assert csrf, f"{self.username} did not sign in"
        self.csrf = csrf[1]
        self.htmx = {"HX-Request": "true", "X-CSRF-Token": self.csrf}

    @task(1)
    def stylesheet(self) -> None:
        """The bench's reference: a static file, so the server's own queueing under this load."""
        self.client.get("/static/forms.css", name=REFERENCE)


class Registrar(Staff):
    weight = 1
    username = "registrar"

    @task(3)
    def search_as_typed(self) -> None:
        phrase = random.choice(TYPED)
        for end in range(3, len(phrase) + 3, 4):  # htmx sends after each pause in typing
            data = {"csrf": self.csrf, "q": phrase[:end]}
            self.client.post("/desk/search", data=data, headers=self.htmx, name="POST /desk/search")
            time.sleep(0.4)  # the next keystrokes (gevent's sleep: other users go on)

    @task(1)
    def register_from_the_card(self) -> None:
        sex = random.choice(("male", "female"))
        year = random.randint(1940, 1999)
        digit = "1" if sex == "female" else "0"
        cccd = f"027{digit}{year % 100:02d}{random.randint(0, 999_999):06d}"
        name = f"{random.choice(FAMILY)} {random.choice(GIVEN)}"
        person = {
            "csrf": self.csrf,
            "name": name,
            "birth_date": f"{random.randint(1, 28):02d}/{random.randint(1, 12):02d}/{year}",
            "sex": sex,
            "cccd": cccd,
            "address": "Số 5 Nguyễn Gia Thiều, phường Suối Hoa, tỉnh Bắc Ninh",
        }
        r = self.client.post("/desk/patient", data=person, name="POST /desk/patient")
        found = PATIENT_PAGE.search(r.url or "")
        if not found:
            return  # a CCCD drawn twice: the form said so (400), nothing to register
        pid = found[1]
        self.wait()
        page = self.client.get(f"/desk/patient/{pid}", name="GET /desk/patient/[id]").text
        clinics = CLINIC.findall(page)
        if clinics:
            data = {"csrf": self.csrf, "clinic": random.choice(clinics)}
            self.client.post(
                f"/desk/patient/{pid}/visit", data=data, name="POST /desk/patient/[id]/visit"
            )


class Doctor(Staff):
    weight = 1
    username = "doctor"

    @task(2)
    def chart_with_years_of_history(self) -> None:
        if CHART_PATIENT:
            self.client.get(f"/chart/{CHART_PATIENT}", name="GET /chart/[5-year patient]")

    @task(3)
    def document_a_visit(self) -> None:
        worklist = self.client.get("/worklist", name="GET /worklist").text
        visits = VISIT.findall(worklist)
        if not visits:
            return
        eid = random.choice(visits)
        base = f"/visit/{eid}"
        self.wait()
        self.client.get(base, name="GET /visit/[id]")
        self.wait()
        vitals = {"csrf": self.csrf, "systolic": "125", "diastolic": "80", "pulse": "78"}
        self.client.post(f"{base}/vitals", data=vitals, headers=self.htmx, name="POST vitals")
        self.wait()
        dx = {"csrf": self.csrf, "code": random.choice(DIAGNOSES), "main": "1"}
        with self.client.post(
            f"{base}/diagnoses",
            data=dx,
            headers=self.htmx,
            name="POST diagnosis",
            catch_response=True,
        ) as r:
            if r.status_code == 400:  # that code is already on the visit: the page says so
                r.success()
        self.client.get(
            f"{base}/search/icd10?dx_q=viem+hong", headers=self.htmx, name="GET ICD-10 search"
        )
        self.wait()
        order = {"csrf": self.csrf, "service": random.choice(LABS)}
        with self.client.post(
            f"{base}/orders", data=order, headers=self.htmx, name="POST order", catch_response=True
        ) as r:
            if r.status_code == 400:  # ordered twice in one visit: refused, as it should be
                r.success()
        self.wait()
        found = self.client.get(
            f"{base}/search/drug?rx_q=paracetamol", headers=self.htmx, name="GET drug search"
        ).text
        key = DRUG.search(found)
        if key:
            rx = {"csrf": self.csrf, "drug": unquote(key[1]), "dose": "1"}
            rx |= {"per_day": "3", "days": "3"}
            with self.client.post(
                f"{base}/prescriptions",
                data=rx,
                headers=self.htmx,
                name="POST prescription",
                catch_response=True,
            ) as r:
                if r.status_code == 409:  # a duplicate-ingredient warning: the page's answer
                    r.success()
